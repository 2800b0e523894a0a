"""The dashboard's entry point: the script `paydash serve` runs as its Streamlit app.

The HTTP layer signs people in: without a valid `paydash_session` cookie no page is served
and no websocket opened (paydash/app/http_auth.py). The script checks the session again
before any page runs (`login.current_user`: it may have ended while the tab stayed open),
and then shows the pages this user may open: viewers get no menu entry and no URL for the
admin pages. Someone whose session ended sees only that message, with a link that signs in
and comes back to the same page and query.

The page scripts live in `app_pages/`, not `pages/`: Streamlit still treats a `pages/`
directory beside the main script as an old-style multipage app, and until st.navigation
has run once in the server process it routes /payments straight to pages/payments.py,
past this file (seen in the browser tests). Each page also calls `login.require_user`.
"""

from pathlib import Path

import streamlit as st

from paydash.app import data, declared_view, login

st.set_page_config(page_title="paydash", page_icon=":material/payments:", layout="wide")

PAGES = Path(__file__).parent / "app_pages"
pages = [
    st.Page(PAGES / "overview.py", title="Overview", icon=":material/monitoring:", url_path="overview", default=True),
    st.Page(PAGES / "payments.py", title="Payments", icon=":material/receipt_long:", url_path="payments"),
    st.Page(PAGES / "operations.py", title="Operations", icon=":material/speed:", url_path="operations"),
    st.Page(PAGES / "customers.py", title="Customers", icon=":material/group:", url_path="customers"),
    st.Page(PAGES / "promotions.py", title="Promotions", icon=":material/sell:", url_path="promotions"),
]
ADMIN_PAGES = [
    st.Page(PAGES / "system.py", title="System", icon=":material/health_and_safety:", url_path="system"),
    st.Page(PAGES / "data_explorer.py", title="Data explorer", icon=":material/table_view:", url_path="data-explorer"),
]

settings = data.settings()
session = login.check_session(settings)
user = session.session
# pages declared in configuration (docs/pages.md): those this user may see; paydash's own only
# once their table exists
declared = declared_view.navigation_pages(settings, None if user is None else user.role)
if user is None:
    # every page declared, hidden, so the address stays what the browser asked for and the
    # sign-in link comes back to it (after sign-in, a viewer's navigation has no admin page)
    st.navigation(pages + declared + ADMIN_PAGES, position="hidden")
    login.session_ended(session.problem)
    st.stop()

page = st.navigation(pages + declared + ADMIN_PAGES if user.is_admin else pages + declared, position="sidebar")
login.sidebar_account(settings, user)
page.run()
