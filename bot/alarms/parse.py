"""CloudWatch alarm messages (the SNS `Message`) parsed into typed objects.

Lenient by design: new keys are ignored, odd literals are normalised, and a
message that is not a CloudWatch alarm yields None so the caller can post it
as a plain notification instead of failing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from bot import json_depth
from bot.clock import parse_time

log = logging.getLogger(__name__)

STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")

# Widths of the incident's columns (bot/incidents/models.py) the alarm's fields go to.
NAME_LENGTH = 255
# A transition may be stamped this far past its notification's receipt (clocks of two
# hosts disagree); later, it is taken as received, so that it cannot outrank every
# genuine transition until that date.
CLOCK_SKEW = timedelta(minutes=5)
_ACCOUNT = re.compile(r"[0-9]{12}")
REGION_LENGTH = 32

# Counts what the parser corrected or refused in an alarm (the metric is the intake's);
# unset, only the WARNING line is written.
_count_odd: ContextVar[Callable[[str], None] | None] = ContextVar("count_odd", default=None)


@contextmanager
def counting_odd_fields(count: Callable[[str], None]) -> Iterator[None]:
    """Within the block, `count(what)` is called for each field parse_alarm corrects or
    refuses (`what`: future_time, name_cut, account_invalid, region_invalid,
    account_mismatch), and for each alarm `carried_alarm` refuses (account_not_topics)."""
    token = _count_odd.set(count)
    try:
        yield
    finally:
        _count_odd.reset(token)


def _odd(what: str, text: str, *args: object, **extra: object) -> None:
    log.warning(text, *args, extra={"odd": what, **extra})
    count = _count_odd.get()
    if count is not None:
        count(what)


@dataclass(frozen=True)
class Dimension:
    name: str
    value: str


@dataclass(frozen=True)
class MetricTrigger:
    """A single-metric alarm."""

    namespace: str
    metric_name: str
    statistic: str
    unit: str | None
    dimensions: tuple[Dimension, ...]
    period_s: int | None
    evaluation_periods: int | None
    datapoints_to_alarm: int | None
    comparison: str
    threshold: float | None
    treat_missing_data: str | None


@dataclass(frozen=True)
class MetricQuery:
    id: str
    expression: str | None
    label: str | None
    namespace: str | None
    metric_name: str | None
    dimensions: tuple[Dimension, ...]
    period_s: int | None
    stat: str | None
    return_data: bool


@dataclass(frozen=True)
class MetricMathTrigger:
    """Metric math, including anomaly detection bands (threshold_metric_id set)."""

    queries: tuple[MetricQuery, ...]
    comparison: str
    threshold: float | None
    threshold_metric_id: str | None
    evaluation_periods: int | None
    datapoints_to_alarm: int | None
    treat_missing_data: str | None

    @property
    def is_anomaly_detection(self) -> bool:
        return self.threshold_metric_id is not None


@dataclass(frozen=True)
class ChildAlarm:
    arn: str
    state: str | None
    at: datetime | None


@dataclass(frozen=True)
class CompositeTrigger:
    rule: str
    children: tuple[ChildAlarm, ...]


Trigger = MetricTrigger | MetricMathTrigger | CompositeTrigger


@dataclass(frozen=True)
class Alarm:
    name: str
    description: str | None
    account: str
    arn: str
    region: str  # the code, from the ARN
    region_name: str | None  # CloudWatch's display name, e.g. "US East (N. Virginia)"
    partition: str
    new_state: str
    old_state: str | None
    reason: str
    state_change_time: datetime
    trigger: Trigger | None

    @property
    def kind(self) -> str:
        if isinstance(self.trigger, CompositeTrigger):
            return "composite"
        if isinstance(self.trigger, MetricMathTrigger):
            return "anomaly" if self.trigger.is_anomaly_detection else "metric-math"
        if isinstance(self.trigger, MetricTrigger):
            return "metric"
        return "unknown"

    @property
    def dimensions(self) -> tuple[Dimension, ...]:
        """The dimensions of every metric the alarm watches (none for a composite)."""
        if isinstance(self.trigger, MetricTrigger):
            return self.trigger.dimensions
        if isinstance(self.trigger, MetricMathTrigger):
            return tuple(d for q in self.trigger.queries for d in q.dimensions)
        return ()


def _str(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# A field that is not a number, or one no int or float holds (`1e400` is infinity once
# parsed), is taken as absent: one bad optional field must not lose the alarm.
_NOT_A_NUMBER = (TypeError, ValueError, OverflowError)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except _NOT_A_NUMBER:
        return None


def _float(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except _NOT_A_NUMBER:
        return None


def normalise_treat_missing_data(value: Any) -> str | None:
    """`"- TreatMissingData:  missing"` and friends become `missing`."""
    text = _str(value)
    if text is None:
        return None
    return text.rsplit(":", 1)[-1].strip(" -") or None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dimensions(raw: Any) -> tuple[Dimension, ...]:
    if not isinstance(raw, list):
        return ()
    dims = []
    for item in raw:
        if isinstance(item, dict):
            name = _str(item.get("name", item.get("Name")))
            value = _str(item.get("value", item.get("Value")))
            if name is not None:
                dims.append(Dimension(name=name, value=value or ""))
    return tuple(dims)


def _query(raw: dict[str, Any]) -> MetricQuery:
    stat = _dict(raw.get("MetricStat"))
    metric = _dict(stat.get("Metric"))
    return MetricQuery(
        id=_str(raw.get("Id")) or "?",
        expression=_str(raw.get("Expression")),
        label=_str(raw.get("Label")),
        namespace=_str(metric.get("Namespace")),
        metric_name=_str(metric.get("MetricName")),
        dimensions=_dimensions(metric.get("Dimensions")),
        period_s=_int(stat.get("Period")),
        stat=_str(stat.get("Stat")),
        return_data=bool(raw.get("ReturnData", False)),
    )


def _trigger(message: dict[str, Any]) -> Trigger | None:
    if _str(message.get("AlarmRule")):
        children = []
        raw_children = message.get("TriggeringChildren")
        for child in raw_children if isinstance(raw_children, list) else []:
            if isinstance(child, dict):
                state = _dict(child.get("State"))
                children.append(
                    ChildAlarm(
                        arn=_str(child.get("Arn")) or "",
                        state=_str(state.get("Value")),
                        at=parse_time(state.get("Timestamp")),
                    )
                )
        return CompositeTrigger(rule=str(message["AlarmRule"]), children=tuple(children))
    raw = message.get("Trigger")
    if not isinstance(raw, dict):
        return None
    evaluation_periods = _int(raw.get("EvaluationPeriods"))
    datapoints_to_alarm = _int(raw.get("DatapointsToAlarm"))
    treat_missing_data = normalise_treat_missing_data(raw.get("TreatMissingData"))
    if isinstance(raw.get("Metrics"), list):
        return MetricMathTrigger(
            queries=tuple(_query(q) for q in raw["Metrics"] if isinstance(q, dict)),
            comparison=_str(raw.get("ComparisonOperator")) or "",
            threshold=_float(raw.get("Threshold")),
            threshold_metric_id=_str(raw.get("ThresholdMetricId")),
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            treat_missing_data=treat_missing_data,
        )
    return MetricTrigger(
        namespace=_str(raw.get("Namespace")) or "",
        metric_name=_str(raw.get("MetricName")) or "",
        statistic=_str(raw.get("ExtendedStatistic")) or _str(raw.get("Statistic")) or "",
        unit=_str(raw.get("Unit")),
        dimensions=_dimensions(raw.get("Dimensions")),
        period_s=_int(raw.get("Period")),
        comparison=_str(raw.get("ComparisonOperator")) or "",
        threshold=_float(raw.get("Threshold")),
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=datapoints_to_alarm,
        treat_missing_data=treat_missing_data,
    )


def _arn_parts(arn: str) -> tuple[str, str, str]:
    """(partition, region, account) of `arn:aws:cloudwatch:us-east-1:123456789012:alarm:x`."""
    parts = arn.split(":", 6)
    if len(parts) >= 5 and parts[0] == "arn":
        return parts[1] or "aws", parts[3], parts[4]
    return "aws", "", ""


def _json_int(text: str) -> int | float:
    """A JSON integer; one past Python's int-string limit (4,300 digits) is infinity,
    which the number fields take as absent, rather than a ValueError that makes the
    whole alarm "not JSON"."""
    try:
        return int(text)
    except ValueError:
        return float("-inf") if text.startswith("-") else float("inf")


def _identity(data: dict[str, Any], name: str) -> tuple[str, str, str, str] | None:
    """(arn, partition, region, account) of the alarm; None when the account is not 12
    digits, the region longer than its column, or the account in the text disagrees with
    the one in the ARN."""
    arn = _str(data.get("AlarmArn")) or ""
    partition, region, arn_account = _arn_parts(arn)
    claimed = _str(data.get("AWSAccountId"))
    if claimed and arn_account and claimed != arn_account:
        # Routes match on the account: which one is true cannot be told.
        _odd(
            "account_mismatch",
            "alarm %r claims account %s but its ARN is of account %s; taken as a notice",
            name,
            claimed[:64],
            arn_account,
            alarm_name=name,
            account=claimed[:64],
            arn_account=arn_account,
        )
        return None
    account = claimed or arn_account
    if account and not _ACCOUNT.fullmatch(account):
        _odd(
            "account_invalid",
            "alarm %r has account %r, not 12 digits; taken as a notice",
            name,
            account[:64],
            alarm_name=name,
            account=account[:64],
        )
        return None
    # A short region that is no region code still pages (it gets no console link); one
    # past the column is no AWS region at all.
    if len(region) > REGION_LENGTH:
        _odd(
            "region_invalid",
            "alarm %r has a region of %d characters, longer than any; taken as a notice",
            name,
            len(region),
            alarm_name=name,
            region=region[:64],
        )
        return None
    return arn, partition, region, account


def _bounded_name(name: str) -> str:
    if len(name) <= NAME_LENGTH:
        return name
    # Cut to the column, the cut shown: its start is what people recognise.
    cut = name[: NAME_LENGTH - 1] + "\u2026"
    _odd(
        "name_cut",
        "alarm name of %d characters cut to %d: %r",
        len(name),
        NAME_LENGTH,
        cut,
        alarm_name=cut,
        length=len(name),
    )
    return cut


def _change_time(raw: Any, *, name: str, received_at: datetime) -> datetime:
    """StateChangeTime, no later than the notification's receipt (plus CLOCK_SKEW)."""
    stamped = parse_time(raw)
    if stamped is None:
        return received_at
    if stamped > received_at + CLOCK_SKEW:
        _odd(
            "future_time",
            "alarm %r changed state at %s, after it was received (%s); taken as received",
            name,
            stamped.isoformat(),
            received_at.isoformat(),
            alarm_name=name,
            state_change_time=stamped.isoformat(),
            received_at=received_at.isoformat(),
        )
        return received_at
    return stamped


def parse_alarm(message: str, *, received_at: datetime | None = None) -> Alarm | None:
    """The alarm in an SNS `Message`, or None when it is not a CloudWatch alarm.

    `received_at`: when the notification arrived (default: now), the latest its
    StateChangeTime may be.
    """
    try:
        json_depth.check_depth(message)  # too deep is a ValueError: not an alarm
        data = json.loads(message, parse_int=_json_int)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    name = _str(data.get("AlarmName"))
    state = _str(data.get("NewStateValue"))
    if name is None or state not in STATES:
        return None
    name = _bounded_name(name)
    identity = _identity(data, name)
    if identity is None:
        return None
    arn, partition, region, account = identity
    old_state = _str(data.get("OldStateValue"))
    return Alarm(
        name=name,
        description=_str(data.get("AlarmDescription")),
        account=account,
        # An alarm without an ARN still needs a stable identity for its incident.
        arn=arn or f"alarm:{account}:{name}",
        region=region,
        region_name=_str(data.get("Region")),
        partition=partition,
        new_state=state,
        old_state=old_state if old_state in STATES else None,
        reason=_str(data.get("NewStateReason")) or "",
        state_change_time=_change_time(
            data.get("StateChangeTime"), name=name, received_at=received_at or datetime.now(UTC)
        ),
        trigger=_trigger(data),
    )


@dataclass(frozen=True)
class TopicAccounts:
    """Whose alarms each carrier may bring: an SNS topic, its own account's and those of
    the accounts `named` for its ARN (None: every account's).

    Under raw delivery (`raw_queue`, its URL) a queued message names no topic that anyone
    vouched for (a TopicArn in its body is the sender's word): the queue carries it, and
    may bring its own account's alarms and those named for its URL.
    """

    named: Mapping[str, frozenset[str] | None] = field(default_factory=dict)
    raw_queue: str | None = None

    def carrier(self, *, via: str, topic_arn: str | None) -> str | None:
        """What carried a message that came `via` (https, sqs) from `topic_arn`."""
        if via == "sqs" and self.raw_queue is not None:
            return self.raw_queue
        return topic_arn

    def may_carry(self, carrier: str | None, account: str) -> bool:
        if carrier is None:
            return False  # nothing vouches for the account
        named = self.named.get(carrier, frozenset())
        return named is None or account in named or account == carrier_account(carrier)


def carrier_account(carrier: str) -> str | None:
    """The account of an SNS topic (`arn:aws:sns:<region>:<account>:<name>`) or of an SQS
    queue (`https://sqs.<region>.amazonaws.com/<account>/<name>`); None when it names none."""
    if carrier.startswith("arn:"):
        parts = carrier.split(":")
        account = parts[4] if len(parts) == 6 and parts[2] == "sns" else ""
    else:
        path = urlsplit(carrier).path.split("/")
        account = path[1] if len(path) == 3 else ""
    return account if _ACCOUNT.fullmatch(account) else None


def carried_alarm(
    alarm: Alarm, *, topics: TopicAccounts, via: str, topic_arn: str | None, message_id: str
) -> Alarm | None:
    """`alarm`, or None (the message a notice) when what carried it may not bring its
    account's alarms: whoever may publish to one allowed topic must not resolve, or page
    through the route of, another account's alarm."""
    carrier = topics.carrier(via=via, topic_arn=topic_arn)
    if topics.may_carry(carrier, alarm.account):
        return alarm
    carrier_of = carrier_account(carrier) if carrier is not None else None
    _odd(
        "account_not_topics",
        "message %r: alarm %r of account %s came by %s, of account %s, which may not carry"
        " that account's alarms (OPSBOT_SNS_TOPIC_ACCOUNTS); taken as a notice",
        message_id[:120],
        alarm.name,
        alarm.account or "(none)",
        repr(carrier) if carrier is not None else "no topic",
        carrier_of or "(none)",
        message_id=message_id[:120],
        topic_arn=carrier,
        alarm_name=alarm.name,
        account=alarm.account,
        topic_account=carrier_of,
    )
    return None
