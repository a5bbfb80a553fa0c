"""What /dbrole says: a role manager's result as Slack mrkdwn (pure functions of the outcome).

Everything the function reports (roles, grants, errors, schema and table names)
is its own text, shown inert; an outcome's failure is mrkdwn already.
"""

from __future__ import annotations

from bot.dbroles.models import CHECK, ManagerResult, Outcome, RoleState
from bot.slack_text import clip, code, escape, inert

# One answer stays readable (and under Slack's limits) however much the function reports.
MAX_LINES = 25
TEXT_CHARS = 2900  # also shown in a confirmation message's 3,000-char section

VERB = {CHECK: "check", "manage": "provision"}
# A run that ended before the roles: a provision would end there too, so none is suggested.
DID_NOT_RUN = (
    "The role manager stopped before it checked or changed the roles: its errors say why (a "
    "secret it could not read, a database it could not reach, an invalid configuration); "
    "the function's log has the whole error."
)


def _bullets(items: list[str]) -> list[str]:
    shown = [f"• {inert(item, 300)}" for item in items[:MAX_LINES]]
    if len(items) > MAX_LINES:
        shown.append(f"• … and {len(items) - MAX_LINES} more")
    return shown


def _role_lines(role: RoleState) -> list[str]:
    if not role.exists:
        return [f"• {code(role.name)}: does not exist"]
    attributes = ", ".join(role.attributes) or "no attributes reported"
    line = f"• {code(role.name)}: {inert(attributes, 500)}"
    if role.member_of:
        line += f" · member of {inert(', '.join(role.member_of), 500)}"
    lines = [line]
    if role.grants:
        lines.append(f"    ↳ {inert('; '.join(role.grants), 1000)}")
    return lines


def headline(outcome: Outcome, *, icon: bool = True) -> str:
    """One line: what was run where, and how it went."""
    line = _headline(outcome)
    return line if icon else line.split(" ", 1)[1]


def _headline(outcome: Outcome) -> str:
    verb = VERB.get(outcome.action, outcome.action)
    where = f"*Database roles of {code(outcome.label)}* ({escape(verb)})"
    result = outcome.result
    if outcome.unanswered:
        return f":warning: {where}: {outcome.failure}."
    if outcome.failure is not None or result is None:
        return f":x: {where}: {outcome.failure or 'no result'}."
    if result.refused:
        return f":no_entry: {where}: refused, nothing was changed."
    if outcome.action == CHECK and not result.ran:
        return f":x: {where}: failed, nothing was checked."
    if outcome.action == CHECK:
        if result.ok:
            return f":white_check_mark: {where}: everything is in order."
        return f":warning: {where}: {len(result.errors)} problem(s)."
    if not result.ok:
        return f":x: {where}: failed."
    if not result.changed:
        return f":white_check_mark: {where}: nothing to change, everything was in order."
    return f":white_check_mark: {where}: {len(result.changed)} change(s) made."


def _details(result: ManagerResult, *, action: str) -> list[str]:
    lines: list[str] = []
    if action != CHECK:
        if result.changed:
            lines += ["*Changed*", *_bullets(result.changed)]
        elif result.ok:
            lines.append("*Changed*: nothing to change.")
        else:  # refused or failed before a change: the errors say why
            lines.append("*Changed*: nothing.")
    if result.errors:
        lines += ["*Errors*", *_bullets(result.errors)]
    if result.warnings:
        lines += ["*Warnings*", *_bullets(result.warnings)]
    if result.roles:
        lines.append("*Roles*")
        for role in result.roles:
            lines += _role_lines(role)
    if result.schema_name:
        if result.schema_exists:
            owner = code(result.schema_owner or "?")
            lines.append(f"*Schema* {code(result.schema_name)} owned by {owner}")
        else:
            lines.append(f"*Schema* {code(result.schema_name)} does not exist")
    if result.unreachable:
        lines.append(
            f"*Tables* {result.table_count}; the app role cannot use: "
            + ", ".join(code(t) for t in result.unreachable[:MAX_LINES])
        )
    elif result.schema_exists:
        reach = "all reachable by the app role" if result.tables_reachable else "not reachable"
        lines.append(f"*Tables* {result.table_count}, {reach}")
    return lines


def outcome_text(outcome: Outcome, *, icon: bool = True) -> str:
    """The whole answer: the headline, then what changed, errors, roles, schema and tables."""
    lines = [headline(outcome, icon=icon)]
    if outcome.result is not None and outcome.failure is None:
        lines += _details(outcome.result, action=outcome.action)
        if outcome.did_not_run:
            lines.append(DID_NOT_RUN)
        elif outcome.action == CHECK and not outcome.result.ok and not outcome.result.refused:
            app, env = outcome.label.split("/", 1)
            lines.append(f"{code(f'/dbrole provision {app} {env}')} repairs what can be repaired.")
    return clip("\n".join(lines), TEXT_CHARS)
