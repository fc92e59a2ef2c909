"""Rented GPUs: the price of an instance per hour and per GPU-hour at a pricing term, plus egress.

Terms are on-demand, 1-year and 3-year commitments, and spot. An instance's own figure is used
when the catalog has one (e.g. GCP's published CUD $/month); otherwise the provider's dated
commitment discount is applied to the on-demand price, and the explanation says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiinfra.catalog.prices import SCALE_OUT_FABRICS, TERM_FIELD, TERMS
from aiinfra.cost import prices
from aiinfra.errors import AiinfraError
from aiinfra.explain import Term


@dataclass(frozen=True)
class CloudOffer:
    key: str
    entry: dict

    @property
    def gpus(self) -> int:
        return int(self.entry["gpus"])

    @property
    def provider(self) -> str:
        return str(self.entry.get("provider", ""))

    @property
    def gpu(self) -> str:
        return str(self.entry.get("gpu", ""))

    @property
    def form_factor(self) -> str:
        return str(self.entry.get("form_factor", "unknown"))

    @property
    def fabric(self) -> str:
        return str(self.entry.get("fabric", "unknown"))

    @property
    def label(self) -> str:
        return f"{self.key} ({self.entry.get('instance', self.key)})"

    def terms(self) -> list[str]:
        """The pricing terms this offer can be priced at (own figure or provider discount)."""
        return [t for t in TERMS if _has_term(self, t)]


def offer(name: str) -> CloudOffer:
    """A cloud instance by key or alias ("aws-p5", "p5.48xlarge"); a miss suggests close names."""
    key, entry = prices.lookup("cloud", name, "instance")
    if not entry.get("gpus") or "on_demand" not in entry:
        raise AiinfraError(f"price entry '{key}' needs 'gpus' and 'on_demand' to be priced")
    return CloudOffer(key, entry)


def offers(gpu: str | None = None) -> list[CloudOffer]:
    out = [CloudOffer(k, e) for k, e in sorted(prices.of_type("cloud").items())]
    return [o for o in out if gpu is None or o.gpu == gpu]


def _discount_entry(provider: str) -> tuple[str, dict] | None:
    for key, entry in prices.of_type("discount").items():
        if entry.get("provider") == provider:
            return key, entry
    return None


def _has_term(o: CloudOffer, term: str) -> bool:
    f = TERM_FIELD[term]
    e = o.entry
    if f in e or f"{f}_monthly" in e or f"{f}_discount" in e:
        return True
    if term in ("1y", "3y") and not e.get("no_commitment"):
        d = _discount_entry(o.provider)
        return d is not None and f"{f}_discount" in d[1]
    return False


def instance_hour_price(o: CloudOffer, term: str = "on-demand") -> Term:
    """$ per instance-hour at `term`, with the catalog entry (and its date) as the source."""
    if term not in TERMS:
        raise AiinfraError(f"unknown pricing term '{term}'; use one of {', '.join(TERMS)}")
    e, f = o.entry, TERM_FIELD[term]
    src = {o.key: prices.describe(o.key, e)}
    per_gpu = e.get("unit") == "gpu-hour"
    name = f"{o.key} {term} $/instance-h"
    if f in e:
        if per_gpu:
            return Term(name, e[f] * o.gpus, "$/h", "price_per_gpu_hour × gpus",
                        {"price_per_gpu_hour": e[f], "gpus": o.gpus}, src)
        return Term(name, float(e[f]), "$/h", "listed price", {"price": e[f]}, src,
                    note=e.get(f"{f}_note", ""))
    if f"{f}_monthly" in e:
        hpm = e.get("hours_per_month", 730)
        return Term(name, e[f"{f}_monthly"] / hpm, "$/h", "monthly_commitment / hours_per_month",
                    {"monthly_commitment": e[f"{f}_monthly"], "hours_per_month": hpm}, src)
    if term == "spot":
        raise AiinfraError(f"instance '{o.key}' has no spot price in the catalog; use one of {', '.join(o.terms())}")
    # Commitments without an own figure: on-demand minus a dated discount.
    od = instance_hour_price(o, "on-demand")
    if f"{f}_discount" in e:
        d, dsrc = e[f"{f}_discount"], src
    else:
        found = None if e.get("no_commitment") else _discount_entry(o.provider)
        if found is None or f"{f}_discount" not in found[1]:
            raise AiinfraError(f"instance '{o.key}' has no {term} price or {o.provider} discount in the catalog; "
                               f"use one of {', '.join(o.terms())}")
        dkey, dentry = found
        d, dsrc = dentry[f"{f}_discount"], {dkey: prices.describe(dkey, dentry)}
    return Term(name, od.value * (1 - d), "$/h", "on_demand × (1 − discount)",
                {"on_demand": od, "discount": d}, dsrc)


def gpu_hour_price(o: CloudOffer, term: str = "on-demand") -> Term:
    """$ per GPU-hour = instance price / GPUs per instance."""
    inst = instance_hour_price(o, term)
    return Term(f"{o.key} {term} $/GPU-h", inst.value / o.gpus, "$/GPU-h", "instance_price / gpus",
                {"instance_price": inst, "gpus": o.gpus})


def egress_price(provider: str = "aws") -> Term:
    entries = prices.of_type("egress")
    for key, e in sorted(entries.items()):
        if e.get("provider") == provider:
            return Term("egress $/GB", float(e["usd_per_gb"]), "$/GB", "listed price",
                        {"usd_per_gb": e["usd_per_gb"]}, {key: prices.describe(key, e)})
    key, e = min(entries.items())
    return Term("egress $/GB", float(e["usd_per_gb"]), "$/GB", "listed price (no entry for this provider)",
                {"usd_per_gb": e["usd_per_gb"]}, {key: prices.describe(key, e)},
                note=f"no egress price for {provider}; {key} is used")


def cloud_cost(gpu_hours: float, price: Term, egress_tb: float = 0.0, egress: Term | None = None) -> Term:
    """Cost of `gpu_hours` at `price` ($/GPU-h) plus egress_tb × 1000 GB × $/GB."""
    if gpu_hours < 0 or egress_tb < 0:
        raise AiinfraError("GPU-hours and egress must be >= 0")
    compute = Term("cloud compute", gpu_hours * price.value, "$", "gpu_hours × price",
                   {"gpu_hours": gpu_hours, "price": price})
    if not egress_tb or egress is None:
        return compute
    out = Term("egress", egress_tb * 1000 * egress.value, "$", "egress_TB × 1000 GB/TB × $/GB",
               {"egress_TB": egress_tb, "$/GB": egress})
    return Term("cloud cost", compute.value + out.value, "$", "cloud compute + egress", parts=[compute, out])


def like_for_like(o: CloudOffer, form_factor: str, fabric: str) -> str | None:
    """A warning when an offer is not the same product as the on-prem cluster it is compared with."""
    diffs = []
    if o.form_factor != form_factor:
        diffs.append(f"{o.form_factor} GPUs vs {form_factor}")
    if fabric in SCALE_OUT_FABRICS and o.fabric not in SCALE_OUT_FABRICS:
        diffs.append(f"fabric '{o.fabric}' vs an {fabric.upper()} scale-out fabric")
    if not diffs:
        return None
    return f"{o.label} is not like-for-like with the owned cluster: " + "; ".join(diffs)
