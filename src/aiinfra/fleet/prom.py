"""A small typed client for the Prometheus HTTP API (query, query_range, series, labels).

Every analysis in aiinfra runs *inside* Prometheus (or Thanos/Mimir behind the same API): this
module only ships PromQL there and turns the JSON envelope into plain Python values. Failures
become one-line `AiinfraError`s that name the server, the status and the server's own message:

- 400 bad parameters, 422 the expression cannot be executed, 503 timeout/abort (api.md §9.3);
- connection refused, DNS failure, timeout: "cannot reach Prometheus at URL: …".

Sample values arrive as JSON strings (because of NaN/±Inf); they are converted to float here.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from aiinfra.errors import AiinfraError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as '24h', '1h30m', '90s' or '7d' (a plain number is seconds)."""
    s = str(text).strip()
    if not s:
        raise AiinfraError("empty duration; use a Prometheus duration such as 24h, 30m or 7d")
    try:
        value = float(s)
    except ValueError:
        pos, total = 0, 0.0
        for m in _DURATION.finditer(s):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _SECONDS[m.group(2)]
            pos = m.end()
        if pos != len(s) or pos == 0:
            raise AiinfraError(f"duration '{s}' does not parse; use a Prometheus duration such as 24h, 30m or 7d") from None
        value = total
    if not math.isfinite(value) or value <= 0:
        raise AiinfraError(f"duration '{s}' must be a positive time span such as 24h")
    return value


def fmt_duration(seconds: float) -> str:
    """The shortest Prometheus duration for a whole number of seconds ('86400' → '1d', '5400' → '90m')."""
    s = int(round(seconds))
    if s <= 0:
        raise ValueError("duration must be positive")
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def even_step(range_s: float, target_s: float) -> int:
    """A subquery step of at least `target_s` (and at most twice it) that divides the window, so the
    window holds exactly range/step steps and step counts add up to the window's hours; `target_s`
    itself when no such divisor exists (a count may then be one step off)."""
    r, lo = int(round(range_s)), max(1, int(math.ceil(target_s)))
    if r == range_s:
        for step in range(lo, 2 * lo + 1):
            if r % step == 0:
                return step
    return lo


def subquery_range(range_s: float) -> str:
    """The range of a subquery that samples the window (end - range, end] and nothing else.

    Prometheus 2.x takes a subquery's steps from [end - range, end], both ends included (3.x drops
    the start), so `count_over_time(x[1h:15s])` counts 241 steps on 2.x: a GPU held for exactly an
    hour was billed 1.00417 h and back-to-back windows shared a step. One millisecond short of the
    range leaves out the start on both: [3599999ms:15s] holds 240 steps, and consecutive windows
    tile time."""
    ms = int(round(range_s * 1000.0))
    if ms < 2:
        raise AiinfraError(f"window of {range_s:g} s is too short for a subquery")
    return f"{ms - 1}ms"


LAST_END_S = 253402300799.0  # 9999-12-31T23:59:59Z, the last second a four-digit year can name


def check_end(end: float | None) -> None:
    """An --end that Prometheus can take as the end of a window: finite Unix seconds between 1970
    and the year 9999. A millisecond timestamp (13 digits) is named as such: it used to read as a
    window thousands of years out, and the report said NO DATA."""
    if end is None:
        return
    if isinstance(end, bool) or not isinstance(end, int | float) or not math.isfinite(end):
        raise AiinfraError(f"--end must be a finite Unix time in seconds, got {end}")
    if end < 0:
        raise AiinfraError(f"--end must be Unix seconds since 1970 (0 or more), got {end:g}")
    if end > LAST_END_S:
        if end / 1000.0 <= LAST_END_S:
            raise AiinfraError(f"--end {end:.0f} is after the year 9999: it looks like milliseconds; give Unix seconds ({end / 1000.0:.0f})")
        raise AiinfraError(f"--end {end:g} is after the year 9999; give Unix seconds, such as {int(time.time())} for now")


def check_held_mib(held_mib: float) -> None:
    """Framebuffer MiB above which a GPU counts as held: finite and not negative."""
    if isinstance(held_mib, bool) or not isinstance(held_mib, int | float) or not (math.isfinite(held_mib) and held_mib >= 0):
        raise AiinfraError(f"--held-mib must be finite and not negative (MiB of framebuffer), got {held_mib}")


def check_price(price: float | None) -> None:
    if price is not None and (isinstance(price, bool) or not isinstance(price, int | float)
                              or not (math.isfinite(price) and price >= 0)):
        raise AiinfraError(f"--price-per-gpu-hour must be finite and not negative (USD per GPU-hour), got {price}")


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector: its labels and its value at `time` (Unix seconds)."""

    labels: dict[str, str]
    value: float
    time: float


@dataclass(frozen=True)
class Series:
    """One element of a range matrix: labels plus parallel lists of times and values."""

    labels: dict[str, str]
    times: list[float]
    values: list[float]


@dataclass
class QueryLog:
    """What was sent: the benchmark prints the count, tests check every expression ran."""

    expressions: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def count(self) -> int:
        return len(self.expressions)


MAX_TIMEOUT_S = 3600.0  # one query may wait an hour at most (a bound, so no value overflows the socket layer)


class Prometheus:
    """Client for one Prometheus-compatible endpoint. Use as a context manager or call close()."""

    def __init__(self, url: str, timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        url = url.strip().rstrip("/")
        if not re.match(r"^https?://[^/]+", url):
            raise AiinfraError(f"Prometheus URL '{url}' must start with http:// or https://")
        if not (isinstance(timeout, int | float) and 0 < timeout <= MAX_TIMEOUT_S):
            raise AiinfraError(f"query timeout must be between 0 and {MAX_TIMEOUT_S:g} seconds, got {timeout}")
        self.url = url
        self.timeout = timeout
        self.log = QueryLog()
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport)

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ----------------------------------------------------------------------------

    def _call(self, path: str, params: dict[str, Any] | list[tuple[str, Any]], expr: str | None = None) -> Any:
        """POST form-encoded (long PromQL fits), unwrap the envelope, map every failure to one line."""
        if isinstance(params, list):  # repeated keys (match[]) → {key: [values]}, the form httpx encodes
            grouped: dict[str, list[Any]] = {}
            for k, v in params:
                grouped.setdefault(k, []).append(v)
            params = grouped
        return self._send("POST", path, params, expr)

    def _get(self, path: str, params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> Any:
        return self._send("GET", path, params)

    def _send(self, method: str, path: str, params: Any, expr: str | None = None) -> Any:
        """One request; the envelope's `data`, or one line saying what went wrong."""
        started = time.perf_counter()
        try:
            if method == "POST":
                resp = self._http.post(path, data=params)
            else:
                resp = self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise AiinfraError(f"Prometheus at {self.url} did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise AiinfraError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        finally:
            self.log.seconds += time.perf_counter() - started
        if expr is not None:
            self.log.expressions.append(expr)
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or "status" not in doc:
            snippet = " ".join(resp.text.split())[:120]
            raise AiinfraError(f"{self.url}{path} is not a Prometheus API (HTTP {resp.status_code}: {snippet!r})")
        if doc["status"] != "success":
            kind = doc.get("errorType", "error")
            msg = " ".join(str(doc.get("error", "unknown error")).split())
            what = f" for {_short(expr)}" if expr else ""
            raise AiinfraError(f"Prometheus rejected the request{what} (HTTP {resp.status_code} {kind}): {msg}")
        if "data" not in doc:
            raise NotAnswer(self.url, path, "its success answer has no data")
        return doc["data"]

    # -- API ------------------------------------------------------------------------------------

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Instant query; a scalar result comes back as one Sample with empty labels."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        path = "/api/v1/query"
        data = self._call(path, params, expr)
        kind, result = _result(self.url, path, data)
        if kind == "vector":
            return _vector(self.url, path, result)
        if kind == "scalar":
            t, v = _point(self.url, path, result)
            return [Sample({}, v, t)]
        raise AiinfraError(f"query {_short(expr)} returned a {kind}, expected an instant vector or scalar")

    def raw(self, selector: str, window: str, at: float | None = None) -> list[Series]:
        """The stored samples of `selector` over `window` before `at` (an instant query of a range selector)."""
        expr = f"{selector}[{window}]"
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        path = "/api/v1/query"
        kind, result = _result(self.url, path, self._call(path, params, expr))
        if kind != "matrix":
            raise AiinfraError(f"query {_short(expr)} returned a {kind}, expected a matrix")
        return _matrix(self.url, path, result)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        if step <= 0 or end < start:
            raise AiinfraError(f"bad range: start {start}, end {end}, step {step}")
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        path = "/api/v1/query_range"
        kind, result = _result(self.url, path, self._call(path, params, expr))
        if kind != "matrix":
            raise AiinfraError(f"range query {_short(expr)} returned a {kind}, expected a matrix")
        return _matrix(self.url, path, result)

    def series(self, match: list[str], start: float | None = None, end: float | None = None) -> list[dict[str, str]]:
        params: list[tuple[str, Any]] = [("match[]", m) for m in match]
        params += _window(start, end)
        path = "/api/v1/series"
        data = self._call(path, params)
        if not isinstance(data, list) or not all(_is_labels(x) for x in data):
            raise NotAnswer(self.url, path, "its data is not a list of label sets")
        return list(data)

    def labels(self, match: list[str] | None = None, start: float | None = None, end: float | None = None) -> list[str]:
        params: list[tuple[str, Any]] = [("match[]", m) for m in match or []]
        params += _window(start, end)
        return _names(self.url, "/api/v1/labels", self._call("/api/v1/labels", params))

    def label_values(self, label: str, match: list[str] | None = None, start: float | None = None, end: float | None = None) -> list[str]:
        params: list[tuple[str, Any]] = [("match[]", m) for m in match or []]
        params += _window(start, end)
        # The values endpoint is GET-only in older Prometheus releases.
        path = f"/api/v1/label/{label}/values"
        return _names(self.url, path, self._get(path, params))

    def targets(self) -> list[dict[str, Any]]:
        return _listed(self.url, "/api/v1/targets", self._get("/api/v1/targets", {"state": "active"}), "activeTargets")

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts the server's own rule evaluation holds now (pending and firing)."""
        return _listed(self.url, "/api/v1/alerts", self._get("/api/v1/alerts"), "alerts")

    def ready(self) -> bool:
        try:
            return self._http.get("/-/ready").status_code == 200
        except httpx.HTTPError:
            return False


# -- the shapes of a success answer (api.md "Expression query result formats") --------------------


class NotAnswer(AiinfraError):
    """A success envelope whose `data` does not have the shape the Prometheus API gives."""

    def __init__(self, url: str, path: str, why: str):
        super().__init__(f"{url}{path} is not a Prometheus API response: {why} (check that the URL is a Prometheus, "
                         "Thanos or Mimir query endpoint)")


def _is_labels(x: Any) -> bool:
    return isinstance(x, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in x.items())


def _result(url: str, path: str, data: Any) -> tuple[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get("resultType"), str) or "result" not in data:
        raise NotAnswer(url, path, "its data has no resultType and result")
    return data["resultType"], data["result"]


def _value(url: str, path: str, v: Any) -> float:
    """A sample value: a JSON string (Go prints NaN, +Inf, -Inf, which float() reads)."""
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise NotAnswer(url, path, f"a sample value is {type(v).__name__}, not a number in a string")
    try:
        return float(v)
    except ValueError:
        raise NotAnswer(url, path, f"a sample value {str(v)[:20]!r} is not a number") from None


def _point(url: str, path: str, p: Any) -> tuple[float, float]:
    """[unix time, "value"] → (time, value)."""
    if not isinstance(p, list | tuple) or len(p) != 2 or isinstance(p[0], bool) or not isinstance(p[0], int | float):
        raise NotAnswer(url, path, "a sample is not a [time, value] pair")
    t = float(p[0])
    if not math.isfinite(t):
        raise NotAnswer(url, path, "a sample time is not finite")
    return t, _value(url, path, p[1])


def _vector(url: str, path: str, result: Any) -> list[Sample]:
    if not isinstance(result, list):
        raise NotAnswer(url, path, "a vector result is not a list")
    out = []
    for r in result:
        if not isinstance(r, dict) or not _is_labels(r.get("metric")):
            raise NotAnswer(url, path, "a vector element has no metric labels")
        t, v = _point(url, path, r.get("value"))
        out.append(Sample(r["metric"], v, t))
    return out


def _matrix(url: str, path: str, result: Any) -> list[Series]:
    if not isinstance(result, list):
        raise NotAnswer(url, path, "a matrix result is not a list")
    out = []
    for r in result:
        if not isinstance(r, dict) or not _is_labels(r.get("metric")) or not isinstance(r.get("values"), list):
            raise NotAnswer(url, path, "a matrix element has no metric labels and values")
        points = [_point(url, path, p) for p in r["values"]]
        out.append(Series(r["metric"], [t for t, _ in points], [v for _, v in points]))
    return out


def _names(url: str, path: str, data: Any) -> list[str]:
    if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
        raise NotAnswer(url, path, "its data is not a list of names")
    return sorted(data)


def _listed(url: str, path: str, data: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get(key), list) or not all(isinstance(x, dict) for x in data[key]):
        raise NotAnswer(url, path, f"its data has no {key} list")
    return list(data[key])


def _window(start: float | None, end: float | None) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if start is not None:
        out.append(("start", f"{start:.3f}"))
    if end is not None:
        out.append(("end", f"{end:.3f}"))
    return out


def _short(expr: str | None, n: int = 80) -> str:
    e = " ".join((expr or "").split())
    return f"'{e[:n]}…'" if len(e) > n else f"'{e}'"
