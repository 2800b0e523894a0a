"""The alert runner's state in the state store: each rule's current state, the history of its
changes, and the outbox of notifications (paydash_alert_rule_state, _transitions, _outbox).

A state change and its notifications are written in one transaction, so a runner that stops at
any point neither pages twice nor forgets a resolve: the next one finds the incident still
firing with its dedup key, and the notification still waiting in the outbox (pending, then sent
or failed). Several processes share it: the Operations page of every `serve` replica reads what
`paydash alerts watch` writes (`current_states`, `history`, `for_dashboard`: plain dicts, empty
lists while no runner has written anything). Times are UTC 'YYYY-MM-DD HH:MM:SS' text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable

import sqlalchemy as sa

from paydash.alerts.evaluate import RuleState, Transition
from paydash.state import schema

if TYPE_CHECKING:
    from paydash.state.store import StateStore


def _text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(sep=" ", timespec="seconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    rule: str
    channel: str
    action: str
    at: datetime
    dedup_key: str
    payload: dict[str, Any]
    attempts: int


_STATE, _TRANSITIONS, _OUTBOX = schema.alert_rule_state, schema.alert_transitions, schema.alert_outbox


class AlertStore:
    """`store.alerts`: what the alert runner keeps between runs."""

    def __init__(self, store: "StateStore") -> None:
        self._store = store

    @property
    def where(self) -> str:
        return self._store.display_url

    # -- rule state ------------------------------------------------------------------------
    def load(self) -> dict[str, RuleState]:
        with self._store.read() as conn:
            rows = conn.execute(sa.select(_STATE)).all()
        return {
            r.rule: RuleState(r.rule, r.state, _time(r.since), _time(r.breach_since), _time(r.clear_since), r.dedup_key,
                              r.value, r.volume, _time(r.evaluated_at))
            for r in rows
        }

    def save(self, states: Iterable[RuleState], transitions: Iterable[Transition],
             notifications: Iterable[tuple[Any, dict[str, Any]]], channels: dict[str, str] | None = None) -> None:
        """New states, their transitions and their notifications (with payloads), in one transaction."""
        channels = channels or {}
        states = [
            {"rule": s.rule, "state": s.state, "since": _text(s.since), "breach_since": _text(s.breach_since),
             "clear_since": _text(s.clear_since), "dedup_key": s.dedup_key, "value": s.value, "volume": s.volume,
             "evaluated_at": _text(s.evaluated_at), "channel": channels.get(s.rule)}
            for s in states
        ]
        with self._store.write() as conn:
            if states:
                conn.execute(_STATE.delete().where(_STATE.c.rule.in_([s["rule"] for s in states])))
                conn.execute(_STATE.insert(), states)
            for t in transitions:
                conn.execute(_TRANSITIONS.insert().values(rule=t.rule, from_state=t.from_state, to_state=t.to_state,
                                                          at=_text(t.at), value=t.value, dedup_key=t.dedup_key))
            for n, payload in notifications:
                conn.execute(_OUTBOX.insert().values(rule=n.rule, channel=n.channel, action=n.action, at=_text(n.at),
                                                     dedup_key=n.dedup_key, payload=json.dumps(payload)))

    # -- outbox ----------------------------------------------------------------------------
    def pending(self) -> list[OutboxItem]:
        """Notifications not yet delivered, oldest first."""
        with self._store.read() as conn:
            rows = conn.execute(sa.select(_OUTBOX).where(_OUTBOX.c.status == "pending").order_by(_OUTBOX.c.id)).all()
        return [OutboxItem(r.id, r.rule, r.channel, r.action, _time(r.at), r.dedup_key, json.loads(r.payload), r.attempts)
                for r in rows]

    def due(self, row_id: int, now: datetime) -> bool:
        with self._store.read() as conn:
            row = conn.execute(sa.select(_OUTBOX.c.next_attempt_at).where(_OUTBOX.c.id == row_id)).first()
        return row is None or row[0] is None or _time(row[0]) <= now

    def mark(self, row_id: int, status: str, detail: str, now: datetime, next_attempt_at: datetime | None = None) -> None:
        """Record a delivery attempt: sent, failed (not to be retried) or pending (retry at next_attempt_at)."""
        values: dict[str, Any] = {"status": status, "attempts": _OUTBOX.c.attempts + 1,
                                  "last_error": None if status == "sent" else detail,
                                  "next_attempt_at": _text(next_attempt_at)}
        if status == "sent":
            values["sent_at"] = _text(now)
        with self._store.write() as conn:
            conn.execute(_OUTBOX.update().where(_OUTBOX.c.id == row_id).values(**values))

    def outbox(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._store.read() as conn:
            rows = conn.execute(sa.select(_OUTBOX).order_by(_OUTBOX.c.id.desc()).limit(int(limit))).mappings().all()
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]

    # -- what the dashboard and `paydash alerts status` show -------------------------------------
    def current_states(self) -> list[dict[str, Any]]:
        """Each rule's state: rule, state (ok|pending|firing|resolved), since, channel, breach_since, dedup_key,
        value, volume, evaluated_at (times are UTC 'YYYY-MM-DD HH:MM:SS' text), firing first."""
        s = _STATE
        order = sa.case({"firing": 0, "pending": 1, "resolved": 2}, value=s.c.state, else_=3)
        query = sa.select(s.c.rule, s.c.state, s.c.since, s.c.channel, s.c.breach_since, s.c.dedup_key, s.c.value,
                          s.c.volume, s.c.evaluated_at).order_by(order, s.c.rule)
        with self._store.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest state changes, newest first: rule, from_state, to_state, at, value, dedup_key,
        with the delivery of the notification it caused, if any (channel, action, delivery: pending|sent|failed)."""
        t, o = _TRANSITIONS, _OUTBOX
        caused = sa.and_(
            o.c.rule == t.c.rule, o.c.at == t.c.at, o.c.dedup_key == t.c.dedup_key,
            sa.or_(sa.and_(t.c.to_state == "firing", o.c.action == "trigger"),
                   sa.and_(t.c.to_state == "resolved", o.c.action == "resolve")),
        )
        query = (sa.select(t.c.rule, t.c.from_state, t.c.to_state, t.c.at, t.c.value, t.c.dedup_key, o.c.channel,
                           o.c.action, o.c.status.label("delivery"))
                 .select_from(t.outerjoin(o, caused)).order_by(t.c.id.desc()).limit(int(limit)))
        with self._store.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def for_dashboard(self, limit: int = 50) -> dict[str, list[dict[str, Any]]]:
        """What the Operations page shows: {"rules": [{rule, state, since, channel, value}],
        "history": [{at, rule, change, action, channel, delivery}]}, newest change first."""
        rules = [{k: s[k] for k in ("rule", "state", "since", "channel", "value")} for s in self.current_states()]
        changes = [
            {"at": h["at"], "rule": h["rule"], "change": f"{h['from_state']} -> {h['to_state']}", "action": h["action"],
             "channel": h["channel"], "delivery": h["delivery"]}
            for h in self.history(limit)
        ]
        return {"rules": rules, "history": changes}
