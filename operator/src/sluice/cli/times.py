"""Times as the plugin prints them: kubectl-style ages, and timestamps in a message made relative to now."""

from __future__ import annotations

import re
from datetime import datetime, timedelta


def age(delta: timedelta) -> str:
    """A duration the way kubectl prints ages: 45s, 3m12s, 25m, 5h10m, 30h, 4d."""
    seconds = max(int(delta.total_seconds()), 0)
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{days}d"


_TIMESTAMP = re.compile(r"\b(at )?(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d))")


def relative_times(message: str, now: datetime) -> str:
    """`next check at 2026-01-01T12:00:48+00:00` as `next check in 48s` (and past times as `12s ago`)."""

    def relative(found: re.Match[str]) -> str:
        moment = datetime.fromisoformat(found.group(2).replace("Z", "+00:00"))
        return f"in {age(moment - now)}" if moment > now else f"{age(now - moment)} ago"

    return _TIMESTAMP.sub(relative, message)
