"""Demo operations events (checkout sessions, retries, receipts) coherent with the demo payments.

Built from the charge mart the demo generator just made (`demo.generate_payments`): each
checkout session belongs to one payment intent of the mart (its id, customer, first-attempt
time and outcome), each retry event to one of its attempts (attempt number, time, outcome,
decline code), each receipt to one successful attempt. Vectorized like the payments: numpy
and pyarrow, no Python loop per event.

Checkout volume is a sample of the payment intents, about TARGET_SESSIONS_PER_DAY sessions a
day whatever the demo's size: the alert rules of PRODUCT.md are absolute counts (more than 10
expired sessions an hour, more than 5 retry failures in 15 minutes, ...), which describe a
small team's checkout, not the 100k payments a day of a 10M-payment benchmark. Outside the
incidents every rule stays clearly healthy; each incident breaks the rules written in
docs/operations.md ("Demo incident timeline"), with absolute volumes injected where the sample
is too small to break a rule on its own (card-testing bots, a retry storm, receipt re-renders).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from paydash.sources.demo.payments import DAY, DemoSpec, Incident, local_to_utc_epoch, stripe_ids
from paydash.warehouse.schema import OPERATIONS_EVENT_NAMES

TARGET_SESSIONS_PER_DAY = 300
CHECKOUT_REFUSALS_PER_HOUR = 40  # issuer outage: checkouts refused outright (steady, whatever the sample)
SESSION_SECONDS = 30 * 60  # sessions are created with expires_at 30 minutes ahead (Stripe's minimum)
EDGE_LOCATIONS = ("iad1", "sfo1", "fra1", "lhr1", "sin1", "syd1", "gru1", "bom1", "hnd1")
# card country -> nearest edge (others: iad1)
EDGE_OF_COUNTRY = {"US": "iad1", "CA": "iad1", "GB": "lhr1", "DE": "fra1", "FR": "fra1", "NL": "fra1", "ES": "fra1",
                   "AU": "syd1", "JP": "hnd1", "BR": "gru1", "IN": "bom1"}
DOWNLOAD_STATUSES = (("downloaded", 0.55), ("emailed", 0.30), ("not_downloaded", 0.13), ("download_failed", 0.02))
SOURCES = ("stripe", "api", "demo")


@dataclass(frozen=True)
class OpsIncident:
    """What one incident does to the operations events (and which alert rule it breaks)."""

    name: str  # an Incident of demo.DEFAULT_INCIDENTS, or an operations-only one below
    effect: str  # checkout_failures | card_testing | stuck_3ds | receipt_outage
    rate_per_hour: float = 0.0  # injected events an hour (absolute, whatever the sample size)
    minutes: float | None = None  # only the first minutes of the incident (None: all of it)


# An operations-only incident (no payment effect): the receipt renderer and its CDN fail.
RECEIPT_OUTAGE = Incident("receipt renderer outage", 2, 11, 0.75, 0.0, ())
OPS_INCIDENTS = (
    # the issuer outage: checkouts fail (success rate far under 97%) and the retry worker's
    # immediate retries are refused by the issuer too (a retry storm: 60 failures an hour, 90 minutes)
    OpsIncident("issuer outage", "checkout_failures", rate_per_hour=60.0, minutes=90),
    # the fraud wave: card-testing bots open sessions and abandon them (30 expired an hour)
    OpsIncident("fraud wave", "card_testing", rate_per_hour=30.0),
    # the 3DS degradation: customers stuck on challenges; support extends windows and
    # overrides; expirations rise but stay under 10 an hour (no alert, annotations only)
    OpsIncident("3DS provider degradation", "stuck_3ds"),
    # receipts fail (>3 in 5 minutes) and render slowly (p95 far above 2,000 ms)
    OpsIncident("receipt renderer outage", "receipt_outage", rate_per_hour=72.0),
)


def incident_windows(spec: DemoSpec) -> dict[str, tuple[datetime, datetime]]:
    """Each incident's [start, end) in naive UTC, as the demo places it (payments and operations)."""
    out = {}
    for inc in (*spec.incidents, RECEIPT_OUTAGE):
        start_local = (spec.days - 1 - inc.days_before_end) * DAY + inc.start_hour * 3600
        bounds = local_to_utc_epoch(np.array([start_local, start_local + int(inc.hours * 3600)], dtype=np.int64), spec)
        out[inc.name] = tuple(datetime.fromtimestamp(int(b), timezone.utc).replace(tzinfo=None) for b in bounds)
    return out


class _Events:
    """Columns of events collected in parts (numpy), joined once at the end."""

    FIELDS = ("name", "at_ms", "lag_ms", "source", "session", "row", "receipt", "attempt", "outcome", "duration",
              "error_row", "error_text", "props")

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, name: str, at_ms: np.ndarray, *, source: str = "stripe", session=-1, row=-1, receipt=-1,  # noqa: ANN001
            attempt=-1, outcome: str | None = None, duration=-1, error_row=-1, error_text=-1, props=-1,
            lag_ms: np.ndarray | int = 0) -> None:
        n = len(at_ms)
        if n == 0:
            return

        def col(value, dtype=np.int64) -> np.ndarray:  # noqa: ANN001
            return np.broadcast_to(np.asarray(value, dtype=dtype), (n,)).copy()

        self.parts.append({
            "name": col(OPERATIONS_EVENT_NAMES.index(name), np.int8), "at_ms": col(at_ms), "lag_ms": col(lag_ms),
            "source": col(SOURCES.index(source), np.int8), "session": col(session), "row": col(row),
            "receipt": col(receipt), "attempt": col(attempt, np.int32),
            "outcome": col(-1 if outcome is None else OUTCOMES.index(outcome), np.int8), "duration": col(duration),
            "error_row": col(error_row), "error_text": col(error_text), "props": col(props, np.int16),
        })

    def joined(self) -> dict[str, np.ndarray]:
        if not self.parts:
            return {f: np.empty(0, dtype=np.int64) for f in self.FIELDS}
        return {f: np.concatenate([p[f] for p in self.parts]) for f in self.FIELDS}


OUTCOMES = ("succeeded", "failed", "expired")
ERROR_TEXTS = (
    "issuer_not_available",  # the retry storm
    "card_testing: session abandoned",  # bots
    "render timeout after 8000 ms",  # receipts
    "edge 502 from renderer",
    "pdf font cache miss",
)
PROPS = (
    '{"extended_by_minutes":30,"reason":"customer in 3DS challenge"}',
    '{"operator":"support","reason":"3DS challenge stuck, confirmed with the bank"}',
    '{"operator":"support","reason":"customer confirmed payment by phone"}',
    '{"reason":"card_testing","blocked_by":"radar"}',
    '{"worker":"retry-worker","mode":"immediate"}',
    '{"worker":"retry-worker","mode":"in_session"}',
    '{"worker":"dunning","mode":"scheduled"}',
)
N_FIXED_PROPS = len(PROPS)
# receipt properties: every (download status, edge) pair, after the fixed ones
RECEIPT_PROPS = tuple(
    f'{{"download_status":"{s}","edge_location":"{e}"}}' for s, _ in DOWNLOAD_STATUSES for e in EDGE_LOCATIONS
)


def _lognormal_ms(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    return np.maximum(1, np.round(median * np.exp(sigma * rng.standard_normal(n)))).astype(np.int64)


def _webhook_lag_ms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Stripe delivers in about a second, now and then a few (never near the 2-minute rule)."""
    return np.minimum(_lognormal_ms(rng, n, 900, 0.7), 30_000)


def _equals(column: pa.ChunkedArray, value: str) -> np.ndarray:
    """column == value as a numpy bool array; on a dictionary column, compares the small integer codes."""
    parts = []
    for chunk in column.chunks:
        if pa.types.is_dictionary(chunk.type):
            codes = [i for i, v in enumerate(chunk.dictionary.to_pylist()) if v == value]
            hit = np.isin(chunk.indices.to_numpy(zero_copy_only=False), codes) if codes else np.zeros(len(chunk), bool)
            parts.append(hit & ~np.asarray(chunk.is_null().to_numpy(zero_copy_only=False)) if chunk.null_count else hit)
        else:
            parts.append(pc.equal(chunk, value).fill_null(False).to_numpy(zero_copy_only=False))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _take(column: pa.ChunkedArray, index: np.ndarray) -> pa.Array:
    """column[index] as a plain (decoded) array; only those rows are copied."""
    return _plain(column.take(pa.array(index, type=pa.int64())))


def _plain(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def generate_operations_events(payments: pa.Table, spec: DemoSpec, target_per_day: int = TARGET_SESSIONS_PER_DAY) -> pa.Table:
    """Operations events for a sample of `payments`' intents, sorted by occurred_at, in the mart's column order."""
    rng = np.random.default_rng(spec.seed + 1)
    now_ms = int(spec.resolved_now().replace(tzinfo=timezone.utc).timestamp()) * 1000
    windows = {name: tuple(int(b.replace(tzinfo=timezone.utc).timestamp()) * 1000 for b in bounds)
               for name, bounds in incident_windows(spec).items()}

    # -- sample the intents ------------------------------------------------------------------
    # Whole columns stay as they are (chunked, maybe dictionary-encoded): only the sampled rows
    # are taken and decoded, so the cost follows the sample, not the demo's size.
    attempt_all = payments.column("attempt_number").to_numpy()
    first_rows = np.flatnonzero(attempt_all == 1)
    share = min(1.0, target_per_day * spec.days / max(len(first_rows), 1))
    pi_col = payments.column("payment_intent_id")
    # Checkout is the channel with fresh card entry: half as many declines as the whole mart
    # (renewals of stored cards decline more), so the failed first attempts are sampled at half
    # the rate; this keeps a normal day's expirations without a retry under the 5% goal.
    failed_all = _equals(payments.column("status"), "failed")
    keep_p = np.where(failed_all[first_rows], 0.5 * share, share)
    # sampled by intent: all attempts of a sampled intent are kept
    sampled_first = first_rows[rng.random(len(first_rows)) < keep_p]
    # the retries of the sampled intents: only the few later attempts are looked up by id
    later = np.flatnonzero(attempt_all >= 2)
    later = later[pc.is_in(_take(pi_col, later), value_set=_take(pi_col, sampled_first)).to_numpy(zero_copy_only=False)]
    rows = np.sort(np.concatenate([sampled_first, later]))
    sub_pi = pc.dictionary_encode(_take(pi_col, rows))
    intent = sub_pi.indices.to_numpy().astype(np.int64)  # intent number of each kept row
    n_int = len(sub_pi.dictionary)
    at_ms = _take(payments.column("created_at"), rows).cast(pa.int64()).to_numpy() // 1000
    attempt = attempt_all[rows]
    status = _take(payments.column("status"), rows)
    ok = pc.equal(status, "succeeded").to_numpy(zero_copy_only=False)
    failed = failed_all[rows]
    country = _take(payments.column("card_country"), rows)

    # the rows of each intent's attempts 1, 2, 3 (-1 when none)
    by_attempt = np.full((4, n_int), -1, dtype=np.int64)
    for k in (1, 2, 3):
        m = np.flatnonzero(attempt == k)
        by_attempt[k, intent[m]] = m
    r1 = by_attempt[1]
    sessions = np.flatnonzero(r1 >= 0)  # intents with a first attempt get a checkout session
    r1s = r1[sessions]
    t1 = at_ms[r1s]
    started = t1 - rng.integers(20_000, 600_000, size=len(sessions))
    expires = started + SESSION_SECONDS * 1000
    session_of_intent = np.full(n_int, -1, dtype=np.int64)
    session_of_intent[sessions] = np.arange(len(sessions))
    sid = np.arange(len(sessions))
    ev = _Events()

    def in_window(name: str, t: np.ndarray) -> np.ndarray:
        if name not in windows:
            return np.zeros(len(t), dtype=bool)
        lo, hi = windows[name]
        return (t >= lo) & (t < hi)

    # -- checkout sessions -------------------------------------------------------------------
    ev.add("checkout_started", started, session=sid, row=r1s, lag_ms=_webhook_lag_ms(rng, len(sid)))
    ok1, failed1 = ok[r1s], failed[r1s]
    r2 = by_attempt[2][sessions]
    t2 = np.where(r2 >= 0, at_ms[np.maximum(r2, 0)], np.iinfo(np.int64).max)
    in_session_retry = failed1 & (r2 >= 0) & (t2 < expires - 60_000)
    outage = failed1 & in_window("issuer outage", t1)
    won_in_session = in_session_retry & ~outage & ok[np.maximum(r2, 0)]
    stuck = (failed1 & ~outage & ~won_in_session & in_window("3DS provider degradation", t1)
             & (rng.random(len(sid)) < 0.6))
    # support rescues a few ordinary abandoned sessions too, so overrides exist outside incidents
    rescued = failed1 & ~outage & ~stuck & ~in_session_retry & (rng.random(len(sid)) < 0.02)

    done = ok1.copy()
    m = ok1
    ev.add("checkout_completed", t1[m] + rng.integers(500, 3000, size=m.sum()), session=sid[m], row=r1s[m],
           outcome="succeeded", lag_ms=_webhook_lag_ms(rng, m.sum()))
    m = outage  # the issuer is down: the submitted checkout fails
    ev.add("checkout_completed", t1[m] + rng.integers(500, 3000, size=m.sum()), session=sid[m], row=r1s[m],
           outcome="failed", error_row=r1s[m], lag_ms=_webhook_lag_ms(rng, m.sum()))
    done |= outage
    m = in_session_retry & ~outage
    won = won_in_session
    extend = m & (rng.random(len(sid)) < 0.2)
    ev.add("checkout_window_extended", t2[extend] - rng.integers(5_000, 60_000, size=extend.sum()), source="api",
           session=sid[extend], row=r1s[extend], props=0)
    ev.add("checkout_completed", t2[won] + rng.integers(500, 3000, size=won.sum()), session=sid[won], row=r2[won],
           outcome="succeeded", lag_ms=_webhook_lag_ms(rng, won.sum()))
    done |= won
    for m, reason in ((stuck, 1), (rescued, 2)):
        when = expires[m] - rng.integers(60_000, 600_000, size=m.sum())
        ev.add("checkout_window_extended", when - rng.integers(60_000, 300_000, size=m.sum()), source="api",
               session=sid[m], row=r1s[m], props=0)
        ev.add("checkout_manual_override", when, source="api", session=sid[m], row=r1s[m], outcome="succeeded",
               error_row=r1s[m], props=reason)
        ev.add("checkout_completed", when + rng.integers(1_000, 5_000, size=m.sum()), session=sid[m], row=r1s[m],
               outcome="succeeded", lag_ms=_webhook_lag_ms(rng, m.sum()))
        done |= m
    # everything else that failed ran out of time (pending ones are still open)
    m = failed1 & ~done
    ev.add("checkout_expired", expires[m], session=sid[m], row=r1s[m], outcome="expired", error_row=r1s[m],
           lag_ms=_webhook_lag_ms(rng, m.sum()))

    # -- retries: every attempt after the first of a sampled intent ----------------------------
    # attempt_number of a retry event is the retry's number (1 = the intent's second charge attempt)
    retry_rows = np.flatnonzero(attempt >= 2)
    t = at_ms[retry_rows]
    quick = (session_of_intent[intent[retry_rows]] >= 0) & (t < expires[np.maximum(session_of_intent[intent[retry_rows]], 0)])
    ev.add("retry_initiated", t - rng.integers(1_000, 30_000, size=len(t)), source="api",
           session=np.where(quick, session_of_intent[intent[retry_rows]], -1), row=retry_rows,
           attempt=attempt[retry_rows] - 1, props=np.where(quick, 5, 6))
    finished = ~pc.equal(status.take(pa.array(retry_rows)), "pending").to_numpy(zero_copy_only=False)
    rr = retry_rows[finished]
    ev.add("retry_completed", at_ms[rr] + rng.integers(300, 4_000, size=len(rr)), row=rr, attempt=attempt[rr] - 1,
           outcome=None, duration=_lognormal_ms(rng, len(rr), 1_400, 0.5), error_row=np.where(failed[rr], rr, -1),
           lag_ms=_webhook_lag_ms(rng, len(rr)))
    # the outcome of those: set after joining (succeeded / failed by the attempt's status)
    retry_outcome_part = len(ev.parts) - 1 if len(rr) else None

    # -- receipts: one per successful attempt ---------------------------------------------------
    receipt_rows = np.flatnonzero(ok)
    t_rcpt = at_ms[receipt_rows] + rng.integers(2_000, 9_000, size=len(receipt_rows))
    duration = _lognormal_ms(rng, len(receipt_rows), 620, 0.42)
    bad = rng.random(len(receipt_rows)) < 0.002
    in_outage = in_window("receipt renderer outage", t_rcpt)
    bad |= in_outage & (rng.random(len(receipt_rows)) < 0.7)
    duration = np.where(in_outage, _lognormal_ms(rng, len(receipt_rows), 5_500, 0.35), duration)
    duration = np.where(bad, np.maximum(duration, 8_000), duration)
    edge = _edge_index(country.take(pa.array(receipt_rows)))
    dl = rng.choice(len(DOWNLOAD_STATUSES), size=len(receipt_rows),
                    p=np.array([w for _, w in DOWNLOAD_STATUSES]) / sum(w for _, w in DOWNLOAD_STATUSES))
    dl = np.where(bad, [s for s, _ in DOWNLOAD_STATUSES].index("download_failed"), dl)
    props = N_FIXED_PROPS + dl * len(EDGE_LOCATIONS) + edge
    receipt_no = np.arange(len(receipt_rows))
    receipt_session = session_of_intent[intent[receipt_rows]]
    # a receipt belongs to the checkout session only when the payment succeeded within it
    receipt_session = np.where((receipt_session >= 0) & (at_ms[receipt_rows] < expires[np.maximum(receipt_session, 0)]),
                               receipt_session, -1)
    for m, outcome in ((~bad, "succeeded"), (bad, "failed")):
        ev.add("receipt_generated", t_rcpt[m], source="api", session=receipt_session[m],
               row=receipt_rows[m], receipt=receipt_no[m], outcome=outcome, duration=duration[m],
               error_text=np.where(m & bad, 2 + rng.integers(0, 3, size=len(m)), -1)[m], props=props[m])
    n_receipts = len(receipt_rows)

    # -- absolute injections of the incidents ---------------------------------------------------
    extra_sessions = 0
    for inc in OPS_INCIDENTS:
        if inc.name not in windows or not inc.rate_per_hour:
            continue
        lo, hi = windows[inc.name]
        if inc.minutes is not None:
            hi = min(hi, lo + int(inc.minutes * 60_000))
        n = int(round(inc.rate_per_hour * (hi - lo) / 3_600_000))
        if n == 0 or lo >= now_ms:
            continue
        # evenly spread (one in each slice of the window): a steady incident, not a flapping one
        when = lo + ((np.arange(n) + rng.random(n)) * (hi - lo) / n).astype(np.int64)
        if inc.effect == "card_testing":
            # bots open a session, try a card or two, leave; it expires 30 minutes later
            opened = when - SESSION_SECONDS * 1000
            bots = len(sessions) + extra_sessions + np.arange(n)
            extra_sessions += n
            ev.add("checkout_started", opened, session=bots, lag_ms=_webhook_lag_ms(rng, n), props=3)
            ev.add("checkout_expired", when, session=bots, outcome="expired", error_text=1, props=3,
                   lag_ms=_webhook_lag_ms(rng, n))
        elif inc.effect == "checkout_failures":
            # the retry worker retries the outage's failures at once; the issuer refuses again
            victims = r1s[outage]
            row = victims[rng.integers(0, len(victims), size=n)] if len(victims) else np.full(n, -1)
            ev.add("retry_initiated", when - rng.integers(500, 5_000, size=n), source="api", row=row, attempt=1, props=4)
            ev.add("retry_completed", when, row=row, attempt=1, outcome="failed", duration=_lognormal_ms(rng, n, 2_500, 0.4),
                   error_text=0, props=4, lag_ms=_webhook_lag_ms(rng, n))
            # and new checkouts are refused before a payment intent is confirmed, all outage long
            lo2, hi2 = windows[inc.name]
            k = int(round(CHECKOUT_REFUSALS_PER_HOUR * (hi2 - lo2) / 3_600_000))
            refused = lo2 + ((np.arange(k) + rng.random(k)) * (hi2 - lo2) / k).astype(np.int64)
            ids = len(sessions) + extra_sessions + np.arange(k)
            extra_sessions += k
            ev.add("checkout_started", refused - rng.integers(30_000, 300_000, size=k), session=ids,
                   lag_ms=_webhook_lag_ms(rng, k))
            ev.add("checkout_completed", refused, session=ids, outcome="failed", error_text=0,
                   lag_ms=_webhook_lag_ms(rng, k))
        elif inc.effect == "receipt_outage":
            # queued receipts re-rendered while the renderer is down: most fail, all slowly
            recent = receipt_rows[t_rcpt < lo][-200:]
            row = recent[rng.integers(0, len(recent), size=n)] if len(recent) else np.full(n, -1)
            fail = np.ones(n, dtype=bool)  # the renderer is down: every re-render fails
            ev.add("receipt_generated", when, source="api", row=row, receipt=n_receipts + np.arange(n),
                   outcome=None, duration=_lognormal_ms(rng, n, 6_500, 0.3),
                   error_text=np.where(fail, 2 + rng.integers(0, 3, size=n), -1),
                   props=N_FIXED_PROPS + np.where(fail, 3, 0) * len(EDGE_LOCATIONS) + rng.integers(0, len(EDGE_LOCATIONS), size=n))
            ev.parts[-1]["outcome"] = np.where(fail, OUTCOMES.index("failed"), OUTCOMES.index("succeeded")).astype(np.int8)
            n_receipts += n

    if retry_outcome_part is not None:
        part = ev.parts[retry_outcome_part]
        part["outcome"] = np.where(failed[part["row"]], OUTCOMES.index("failed"), OUTCOMES.index("succeeded")).astype(np.int8)
    return _to_table(ev.joined(), payments, rows, len(sessions) + extra_sessions, n_receipts, now_ms, rng)


def _edge_index(country: pa.Array) -> np.ndarray:
    names = list(EDGE_LOCATIONS)
    keys = pa.array(list(EDGE_OF_COUNTRY))
    values = np.array([names.index(EDGE_OF_COUNTRY[k]) for k in EDGE_OF_COUNTRY] + [0])
    found = pc.index_in(country, value_set=keys).fill_null(len(EDGE_OF_COUNTRY)).to_numpy()
    return values[found]


def _take_or_null(values: pa.Array, index: np.ndarray) -> pa.Array:
    return values.take(pa.array(index, mask=index < 0))


def _take_or_null_column(column: pa.ChunkedArray, index: np.ndarray) -> pa.Array:
    """column[index], null where index < 0, decoded; only those rows are copied."""
    return _plain(column.take(pa.array(index, mask=index < 0, type=pa.int64())))


def _to_table(e: dict[str, np.ndarray], payments: pa.Table, rows: np.ndarray, n_sessions: int, n_receipts: int,
              now_ms: int, rng: np.random.Generator) -> pa.Table:
    keep = e["at_ms"] < now_ms  # what has not happened yet (sessions still open) is left out
    order = np.flatnonzero(keep)[np.argsort(e["at_ms"][keep], kind="stable")]
    e = {k: v[order] for k, v in e.items()}
    n = len(order)
    row = np.where(e["row"] >= 0, rows[np.maximum(e["row"], 0)], -1)  # back to the payments table's rows
    error_row = np.where(e["error_row"] >= 0, rows[np.maximum(e["error_row"], 0)], -1)
    errors_from_rows = _take_or_null_column(payments.column("failure_code"), error_row)
    error = pc.if_else(pa.array(e["error_text"] >= 0),
                       _take_or_null(pa.array(ERROR_TEXTS), e["error_text"]), errors_from_rows)
    received = np.minimum(e["at_ms"] + e["lag_ms"], now_ms)
    props = pa.array(PROPS + RECEIPT_PROPS).take(pa.array(np.where(e["props"] >= 0, e["props"], 0)))
    props = pc.if_else(pa.array(e["props"] >= 0), props, pa.scalar("{}"))
    return pa.table({
        "event_id": stripe_ids("evt_", np.arange(n), rng, ordered_width=8, random_width=14),
        "event_name": pa.DictionaryArray.from_arrays(pa.array(e["name"].astype(np.int32)), pa.array(OPERATIONS_EVENT_NAMES)),
        "occurred_at": pa.array(e["at_ms"] * 1000, type=pa.timestamp("us")),
        "received_at": pa.array(received * 1000, type=pa.timestamp("us")),
        "source": pa.DictionaryArray.from_arrays(pa.array(e["source"].astype(np.int32)), pa.array(SOURCES)),
        "checkout_session_id": _take_or_null(stripe_ids("cs_live_", np.arange(max(n_sessions, 1)), rng, 8, 24), e["session"]),
        "payment_intent_id": _take_or_null_column(payments.column("payment_intent_id"), row),
        "receipt_id": _take_or_null(stripe_ids("rcpt_", np.arange(max(n_receipts, 1)), rng, 8, 8), e["receipt"]),
        "customer_id": _take_or_null_column(payments.column("customer_id"), row),
        "attempt_number": pa.array(e["attempt"], mask=e["attempt"] < 0, type=pa.int32()),
        "outcome": pa.DictionaryArray.from_arrays(pa.array(e["outcome"].astype(np.int32), mask=e["outcome"] < 0),
                                                  pa.array(OUTCOMES)),
        "duration_ms": pa.array(e["duration"], mask=e["duration"] < 0, type=pa.int32()),
        "error": error,
        "properties": props,
    })


def load_operations_events(wh, spec: DemoSpec, payments: pa.Table) -> int:  # noqa: ANN001 - a writable Warehouse
    """(Re)create the operations events mart from the demo payments, with its indexes; returns the row count."""
    from paydash.warehouse import load

    events = generate_operations_events(payments, spec)
    table = wh.marts.operations_events
    with wh.write() as conn:
        table.drop(conn, checkfirst=True)
        table.create(conn)
    load.load_arrow(wh, table, events)
    create_operations_indexes(wh)
    return events.num_rows


def ensure_replaceable(wh) -> None:  # noqa: ANN001
    """Refuse to drop an operations mart the demo did not build (someone's real events)."""
    from paydash.errors import PaydashError
    from paydash.warehouse import load
    from paydash.warehouse.schema import display_name

    table = wh.marts.operations_events
    if wh.has_table(table, max_age=0) and load.read_meta(wh).get("built_by") != "paydash demo":
        raise PaydashError(
            f"{display_name(table)} already exists in {wh.display_url} and was not built by `paydash demo`; "
            "refusing to overwrite it. Point --db at another database or drop the table yourself."
        )


def create_operations_indexes(wh) -> None:  # noqa: ANN001
    """The operations mart's indexes and statistics, per engine (paydash/warehouse/indexes.py:
    PostgreSQL (occurred_at), (event_name, occurred_at), then ANALYZE; DuckDB: rows are in time order)."""
    from paydash.warehouse import indexes

    indexes.create(wh, indexes.OPERATIONS_INDEXES)
    indexes.refresh_statistics(wh, [wh.marts.operations_events])


def describe(spec: DemoSpec) -> list[dict[str, str]]:
    """The incident timeline (UTC) of a demo spec, for docs and tests."""
    windows = incident_windows(spec)
    out = []
    for inc in OPS_INCIDENTS:
        if inc.name in windows:
            lo, hi = windows[inc.name]
            if inc.minutes is not None:
                hi = min(hi, lo + timedelta(minutes=inc.minutes))
            out.append({"incident": inc.name, "effect": inc.effect, "start": lo.isoformat(), "end": hi.isoformat()})
    return out
