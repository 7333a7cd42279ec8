"""A 16-site portfolio as an ESG analyst exports it from Excel, built in code.

Country names ("China"), kinds as people write them ("data center", "R&D Center"),
amounts with thousands separators, a typo'd city ("Tianjn"), an ambiguous city ("Suzhou"
alone: four places in China), development zones as addresses, and one blank weight. The
sites are illustrative, not any company's list.
"""

from __future__ import annotations

import csv
from pathlib import Path

HEADER = ("Site ID", "Site Name", "Company", "Type", "Address", "City", "Country",
          "Asset Value (CNY)")
WEIGHT = "Asset Value (CNY)"

#: (site id, name, kind, address, city, country, asset value in CNY or None for blank)
ROWS: tuple[tuple[str, str, str, str, str, str, int | None], ...] = (
    ("SH-01", "Shanghai HQ", "Office", "1900 Hongmei Road, Xuhui District", "Shanghai",
     "China", 1_200_000_000),
    ("SH-02", "Lingang Computing Center", "data center", "上海市浦东新区临港新片区", "Shanghai",
     "China", 2_500_000_000),
    ("BJ-01", "Beijing Office", "Office", "Haidian District", "Beijing", "China", 900_000_000),
    ("BJ-02", "E-Town Data Center", "data center", "北京经济技术开发区", "Beijing", "China",
     1_800_000_000),
    ("SZ-01", "Shenzhen R&D", "R&D Center", "深圳市南山区科技园", "Shenzhen", "China",
     600_000_000),
    ("SZ-02", "Suzhou Lab", "Lab", "", "Suzhou", "China", 300_000_000),
    ("SU-01", "SIP Office", "Office", "Suzhou Industrial Park", "Suzhou", "China", 450_000_000),
    ("TJ-01", "Tianjin Lab", "Lab", "", "Tianjn", "China", 200_000_000),
    ("HZ-01", "Hangzhou R&D", "R&D Center", "Future Sci-Tech City, Yuhang District", "Hangzhou",
     "China", 700_000_000),
    ("CD-01", "Chengdu Data Center", "data center", "Chengdu Hi-tech Zone", "Chengdu", "China",
     1_100_000_000),
    ("GZ-01", "Guangzhou Office", "Office", "Tianhe District", "Guangzhou", "China",
     500_000_000),
    ("WH-01", "Wuhan Lab", "Lab", "Optics Valley", "Wuhan", "China", 350_000_000),
    ("HK-01", "Hong Kong Office", "Office", "Central", "Hong Kong", "Hong Kong", 800_000_000),
    ("SG-01", "Singapore Office", "Office", "", "Singapore", "Singapore", 400_000_000),
    ("NJ-01", "Nanjing Data Center", "data center", "Jiangning District", "Nanjing", "China",
     None),
    ("XA-01", "Xi'an Lab", "Lab", "Xi'an Hi-tech Zone", "Xi'an", "China", 250_000_000),
)
#: The sites whose addresses the offline geocoder cannot place on its own.
UNPLACEABLE = {"SZ-02": "ambiguous", "TJ-01": "typo"}
BLANK_WEIGHT = "NJ-01"
#: The value of the blank weight in the variant of the workbook without it.
FILLED_WEIGHT = 650_000_000


def weights(*, blank_weight: bool = True) -> dict[str, int | None]:
    """Site id -> asset value as written (None: blank)."""
    return {r[0]: (r[6] if r[6] is not None or blank_weight else FILLED_WEIGHT) for r in ROWS}


def write_csv(path: Path) -> Path:
    """Excel's 'CSV UTF-8' export: BOM, CRLF, amounts as displayed ("1,200,000,000")."""
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(HEADER)
        for sid, name, kind, address, city, country, value in ROWS:
            w.writerow([sid, name, "ACME", kind, address, city, country,
                        "" if value is None else f"{value:,}"])
    return path


def write_xlsx(path: Path, *, sheet: str = "Sites", first: str | None = None,
               blank_weight: bool = True) -> Path:
    """The same sites as a workbook: amounts as numbers, the blank weight an empty cell
    (or :data:`FILLED_WEIGHT` with ``blank_weight=False``).

    ``first`` names a sheet of notes put before the sites sheet (then ``--sheet`` is needed).
    """
    values = weights(blank_weight=blank_weight)
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    if first is not None:
        ws.title = first
        ws.append(["Portfolio notes", "exported from the asset register"])
        ws = wb.create_sheet(sheet)
    else:
        ws.title = sheet
    ws.append(list(HEADER))
    for sid, name, kind, address, city, country, _ in ROWS:
        ws.append([sid, name, "ACME", kind, address or None, city, country, values[sid]])
    wb.save(path)
    return path
