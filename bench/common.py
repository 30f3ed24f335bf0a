"""What the benchmarks share: markdown tables, and writing a section of docs/benchmarks.md."""

import json
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(section: str, text: str, docs: Path = DOCS) -> None:
    """Replace the section headed `section` (up to the next `## `) with `text`, or append it."""
    docs.parent.mkdir(parents=True, exist_ok=True)
    current = docs.read_text() if docs.exists() else "# Benchmarks\n"
    if section in current:
        head, rest = current.split(section, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        current = head.rstrip() + "\n\n" + text.rstrip() + "\n" + ("\n" + tail if tail else "")
    else:
        current = current.rstrip() + "\n\n" + text.rstrip() + "\n"
    docs.write_text(current)


def merge_rows(path: Path, rows: list[dict[str, Any]], key: str = "variant") -> None:
    """Write `rows` to the results file at `path`, keeping its earlier rows whose `key` was not run again."""
    if path.exists():
        fresh = {r[key] for r in rows}
        rows = [r for r in json.loads(path.read_text()) if r[key] not in fresh] + rows
    path.write_text(json.dumps(rows, indent=1))


def error_summary(label: str, errors: list[float]) -> str:
    """`label`: how many of the relative errors |estimate / measured - 1| are within ±15% and beyond ±30%, their
    median and largest."""
    within, beyond = sum(e <= 0.15 for e in errors), sum(e > 0.30 for e in errors)
    median = sorted(errors)[len(errors) // 2]
    return (f"{label}: {within}/{len(errors)} within ±15%, {beyond} beyond ±30%, median error {median:.0%}, "
            f"max {max(errors):.0%}")  # fmt: skip
