"""The dashboard's entry point (`streamlit run paydash/app/main.py`, via `paydash serve`).

Sign-in comes before any page: until someone is signed in, no page runs and no menu
shows. The pages are still declared (hidden), so a shared link to a page, with its query
parameters, opens that page once the visitor has signed in.

The page scripts live in `app_pages/`, not `pages/`: Streamlit still treats a `pages/`
directory beside the main script as an old-style multipage app, and until st.navigation
has run once in the server process it routes /payments straight to pages/payments.py,
past this file (seen in the browser tests). Each page also calls `login.require_user`.
"""

from pathlib import Path

import streamlit as st

from paydash.app import data, login

st.set_page_config(page_title="paydash", page_icon=":material/payments:", layout="wide")

PAGES = Path(__file__).parent / "app_pages"
pages = [
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/monitoring:", url_path="overview", default=True),
    st.Page(PAGES / "payments.py", title="Payments", icon=":material/receipt_long:", url_path="payments"),
    st.Page(PAGES / "operations.py", title="Operations", icon=":material/speed:", url_path="operations"),
    st.Page(PAGES / "customers.py", title="Customers", icon=":material/group:", url_path="customers"),
    st.Page(PAGES / "promotions.py", title="Promotions", icon=":material/sell:", url_path="promotions"),
]

settings = data.settings()
user = login.valid_session(settings)
if user is None or user.is_admin:  # viewers get no menu entry and no URL for the admin pages
    pages += [
        st.Page(PAGES / "system.py", title="System", icon=":material/health_and_safety:", url_path="system"),
        st.Page(PAGES / "data_explorer.py", title="Data explorer", icon=":material/table_view:", url_path="data-explorer"),
    ]
page = st.navigation(pages, position="sidebar" if user else "hidden")
if user is None:
    login.sign_in_page(settings)
    st.stop()

login.sidebar_account(user)
page.run()
