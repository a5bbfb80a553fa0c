"""Short human descriptions of an alarm's metric, threshold and console link.

The descriptions are plain text made of the alarm's own words (metric names,
dimensions, rules): outside text, which the renderers escape. The console
link is built only from a known console host and a region in `REGIONS`
(bot/aws_regions.py): the region comes from the alarm's ARN, which whoever
publishes to the topic writes.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from bot.alarms.parse import (
    Alarm,
    CompositeTrigger,
    Dimension,
    MetricMathTrigger,
    MetricQuery,
    MetricTrigger,
)
from bot.aws_regions import PARTITION_OF
from bot.aws_regions import REGIONS as REGIONS  # re-exported: the regions linked to
from bot.slack_text import CONSOLE_HOSTS

COMPARISONS = {
    "GreaterThanOrEqualToThreshold": ">=",
    "GreaterThanThreshold": ">",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
    "LessThanLowerOrGreaterThanUpperThreshold": "outside the band",
    "LessThanLowerThreshold": "below the band",
    "GreaterThanUpperThreshold": "above the band",
}

log = logging.getLogger(__name__)


def _number(value: float) -> str:
    return f"{value:g}"


def _dims(dimensions: tuple[Dimension, ...]) -> str:
    return ", ".join(f"{d.name}={d.value}" for d in dimensions)


def _metric(namespace: str | None, name: str | None, dimensions: tuple[Dimension, ...]) -> str:
    text = "/".join(part for part in (namespace, name) if part) or "metric"
    dims = _dims(dimensions)
    return f"{text} ({dims})" if dims else text


def _query(query: MetricQuery) -> str:
    if query.expression:
        return f"{query.id} = {query.expression}"
    return f"{query.id} = {_metric(query.namespace, query.metric_name, query.dimensions)}"


def _periods(evaluation: int | None, datapoints: int | None) -> str:
    if evaluation is None:
        return ""
    return f" for {datapoints or evaluation} of {evaluation} periods"


def metric_text(alarm: Alarm) -> str:
    trigger = alarm.trigger
    if isinstance(trigger, MetricTrigger):
        text = _metric(trigger.namespace, trigger.metric_name, trigger.dimensions)
        stat = trigger.statistic.capitalize() if trigger.statistic.isupper() else trigger.statistic
        period = f" over {trigger.period_s} s" if trigger.period_s else ""
        return f"{text}: {stat}{period}" if stat else text
    if isinstance(trigger, MetricMathTrigger):
        shown = [q for q in trigger.queries if q.return_data] or list(trigger.queries)
        return "; ".join(_query(q) for q in shown[:3]) or "metric math"
    if isinstance(trigger, CompositeTrigger):
        return f"composite: {trigger.rule}"
    return ""


def threshold_text(alarm: Alarm) -> str:
    trigger = alarm.trigger
    if isinstance(trigger, MetricTrigger | MetricMathTrigger):
        operator = COMPARISONS.get(trigger.comparison, trigger.comparison)
        periods = _periods(trigger.evaluation_periods, trigger.datapoints_to_alarm)
        if isinstance(trigger, MetricMathTrigger) and trigger.threshold_metric_id:
            return f"{operator} of {trigger.threshold_metric_id}{periods}"
        if trigger.threshold is None:
            return f"{operator}{periods}"
        return f"{operator} {_number(trigger.threshold)}{periods}"
    if isinstance(trigger, CompositeTrigger):
        firing = [c.arn.rsplit(":", 1)[-1] for c in trigger.children if c.state == "ALARM"]
        return "children in ALARM: " + (", ".join(firing) if firing else "none reported")
    return ""


def console_url(alarm: Alarm) -> str | None:
    """The alarm in its partition's CloudWatch console; None when its region is not a known one.

    The partition follows from the region (the ARN's own partition field is
    not trusted); each region has its own console host under its partition's.
    """
    partition = PARTITION_OF.get(alarm.region)
    if partition is None:
        if alarm.region:
            log.warning(
                "alarm %r: region %r is not a known AWS region: no console link",
                alarm.name[:100],
                alarm.region[:100],
            )
        return None
    region, host = alarm.region, CONSOLE_HOSTS[partition]
    name = quote(alarm.name, safe="")
    return f"https://{region}.{host}/cloudwatch/home?region={region}#alarmsV2:alarm/{name}"
