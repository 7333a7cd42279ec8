"""Offline geocoding and cache throughput.

Run: ``python benchmarks/bench_geocode.py [--n 20000]``

Prints, after the gazetteer is loaded (the load time is printed separately):

- offline geocoder throughput in addresses per second (goal >= 10,000/s) over distinct
  addresses in the forms sites arrive in (English with street and house number, Chinese,
  pinyin, Hong Kong districts, cities abroad), built from the gazetteer itself;
- cache hit throughput (``GeocodeCache.get_many`` on a warm SQLite file).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sitescreen.geocode import AddressQuery, GeocodeCache, OfflineGeocoder  # noqa: E402
from sitescreen.geocode.gazetteer import Kind  # noqa: E402

GOAL = 10_000


def make_queries(geocoder: OfflineGeocoder, n: int, seed: int = 1) -> list[AddressQuery]:
    """Distinct, realistic addresses: districts of Chinese cities, HK places, world cities."""
    gaz = geocoder.gazetteer
    p = gaz.places
    rng = random.Random(seed)
    districts = [u for u in range(len(p)) if p.kind[u] == Kind.COUNTY and p.local[u].endswith("区")
                 and p.country[u] == "CN"]
    prefecture = {p.adcode[u]: u for u in range(len(p)) if p.kind[u] in (Kind.PREFECTURE,
                                                                         Kind.PROVINCE)}
    hk = [u for u in range(len(p)) if p.country[u] == "HK" and p.kind[u] == Kind.PLACE]
    world = [u for u in range(len(p)) if p.kind[u] == Kind.PLACE and p.population[u] > 500_000
             and p.country[u] not in ("CN", "HK", "MO", "TW")]
    streets = ["Hongmei", "Zhongshan", "Renmin", "Jiefang", "Keyuan", "Xueyuan", "Binhe"]
    out: list[AddressQuery] = []
    while len(out) < n:
        form = rng.random()
        if form < 0.55:
            u = rng.choice(districts)
            code = p.adcode[u]
            city = prefecture.get(code[:4] + "00") or prefecture.get(code[:2] + "0000")
            city_name = p.name[city].replace(" City", "") if city is not None else ""
            address = (f"{rng.randint(1, 3000)} {rng.choice(streets)} Road, {p.name[u]}, "
                       f"{city_name}")
            out.append(AddressQuery(address, city_name, "CN"))
        elif form < 0.8:
            u = rng.choice(districts)
            code = p.adcode[u]
            parent = prefecture.get(code[:4] + "00") or prefecture.get(code[:2] + "0000")
            prefix = p.local[parent] if parent is not None else ""
            out.append(AddressQuery(f"{prefix}{p.local[u]}{rng.choice('中山人民解放')}路"
                                    f"{rng.randint(1, 999)}号", "", "CN"))
        elif form < 0.9:
            u = rng.choice(hk)
            out.append(AddressQuery(f"Unit {rng.randint(1, 99)}, {p.name[u]}, Hong Kong",
                                    "Hong Kong", "HK"))
        else:
            u = rng.choice(world)
            out.append(AddressQuery(f"{rng.randint(1, 500)} Main Street, {p.name[u]}",
                                    p.name[u], p.country[u]))
    return out


def measure(n: int = 20_000, *, seed: int = 1, single: int = 2000) -> dict:
    """Geocode ``n`` distinct addresses offline, then write and read them through the cache.

    Returns the figures :func:`main` prints (seconds and per-second rates); ``benchmarks/run.py``
    reports the same dictionary.
    """
    geocoder = OfflineGeocoder()
    t0 = time.perf_counter()
    geocoder.gazetteer  # noqa: B018 - load once, outside the timing
    load = time.perf_counter() - t0
    queries = make_queries(geocoder, n, seed=seed)

    t0, c0 = time.perf_counter(), time.process_time()
    results = [geocoder.geocode(q) for q in queries]
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"gazetteer_load_s": load, "n": len(queries), "geocode_s": elapsed,
           "geocode_per_s": len(queries) / elapsed, "geocode_per_cpu_s": len(queries) / cpu,
           "ok_share": sum(r.status == "ok" for r in results) / len(results)}

    with tempfile.TemporaryDirectory() as tmp:
        cache = GeocodeCache(Path(tmp) / "geocode.sqlite")
        t0 = time.perf_counter()
        cache.put_many("offline", zip(queries, results, strict=True))
        write = time.perf_counter() - t0
        t0 = time.perf_counter()
        hits = cache.get_many("offline", queries)
        read = time.perf_counter() - t0
        single = min(single, len(queries))
        t0 = time.perf_counter()
        for q in queries[:single]:
            cache.get("offline", q)
        one = time.perf_counter() - t0
        keys = len({q.key for q in queries})
    out.update({"cache_keys": keys, "cache_write_s": write, "cache_write_per_s": keys / write,
                "cache_hits": len(hits), "cache_read_s": read,
                "cache_read_per_s": len(hits) / read, "cache_single": single,
                "cache_single_s": one, "cache_single_per_s": single / one})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="addresses to geocode")
    args = parser.parse_args()
    m = measure(args.n)
    rate = m["geocode_per_s"]
    print(f"gazetteer load: {m['gazetteer_load_s']:.2f} s")
    print(f"offline geocoding: {m['n']} addresses in {m['geocode_s']:.2f} s = {rate:,.0f} "
          f"addresses/s (goal >= {GOAL:,}/s: {'met' if rate >= GOAL else 'NOT met'}); "
          f"{m['ok_share']:.1%} ok")
    # On a shared machine the wall clock includes time other processes had the CPU.
    print(f"offline geocoding per CPU second: {m['geocode_per_cpu_s']:,.0f} addresses")
    print(f"cache write: {m['cache_keys']} answers in {m['cache_write_s']:.2f} s = "
          f"{m['cache_write_per_s']:,.0f}/s")
    print(f"cache hits (batch): {m['cache_hits']} in {m['cache_read_s']:.3f} s = "
          f"{m['cache_read_per_s']:,.0f}/s")
    print(f"cache hits (one by one): {m['cache_single']} in {m['cache_single_s']:.3f} s = "
          f"{m['cache_single_per_s']:,.0f}/s")


if __name__ == "__main__":
    main()
