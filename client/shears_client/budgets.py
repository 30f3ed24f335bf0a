"""A finished job against its budgets, and its summary: one screen of text, a GitHub step-summary
(Markdown) and a JUnit XML file, all read from the job's report."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr


def _num(value: float) -> str:
    return f"{value:.4g}"


def _ms(entry: dict[str, Any]) -> tuple[float | None, str]:
    if entry.get("estimate_ms") is not None:
        return float(entry["estimate_ms"]), "estimated"
    if entry.get("measured_ms") is not None:
        return float(entry["measured_ms"]), "measured"
    return None, ""


def check_budgets(
    report: dict[str, Any],
    *,
    max_latency_ms: float | None = None,
    devices: tuple[str, ...] | list[str] = ("host",),
    max_size_kb: float | None = None,
    max_accuracy_drop: float | None = None,
) -> list[str]:
    """Each missed budget as a sentence with the figure, the budget and the margin; empty when all are met."""
    misses: list[str] = []
    if max_latency_ms is not None:
        entries = {e.get("device"): e for e in report.get("latency") or [] if isinstance(e, dict)}
        for device in devices or ("host",):
            entry = entries.get(device)
            figure, kind = _ms(entry) if entry is not None else (None, "")
            if figure is None:
                listed = ", ".join(str(d) for d in entries) or "none"
                misses.append(
                    f"latency on {device}: the report has no figure for this device "
                    f"(devices in the report: {listed}); budget {_num(max_latency_ms)} ms"
                )
            elif figure > max_latency_ms:
                misses.append(
                    f"latency on {device}: {_num(figure)} ms ({kind}), budget {_num(max_latency_ms)} ms, "
                    f"over by {_num(figure - max_latency_ms)} ms"
                )
    if max_size_kb is not None:
        size = report.get("size", {}).get("tflite_bytes")
        if size is None:
            misses.append(f"size: the report has no size.tflite_bytes; budget {_num(max_size_kb)} KB")
        elif size / 1024 > max_size_kb:
            kb = size / 1024
            misses.append(
                f"size: {kb:.1f} KB ({size} bytes), budget {_num(max_size_kb)} KB, over by {kb - max_size_kb:.1f} KB"
            )
    if max_accuracy_drop is not None:
        acc = report.get("accuracy", {})
        before, after, metric = acc.get("before"), acc.get("after"), acc.get("metric", "accuracy")
        if before is None or after is None:
            misses.append(f"accuracy drop: the report has no accuracy before/after; budget {max_accuracy_drop}")
        else:
            # MAE and other errors grow when the model gets worse; accuracy shrinks.
            drop = after - before if metric == "mae" else before - after
            if drop > max_accuracy_drop + 1e-12:
                name = "error increase" if metric == "mae" else "accuracy drop"
                misses.append(
                    f"{name} ({metric}): {_num(drop)} ({_num(before)} -> {_num(after)}), "
                    f"budget {_num(max_accuracy_drop)}, over by {_num(drop - max_accuracy_drop)}"
                )
    return misses


def device_rows(report: dict[str, Any]) -> list[dict[str, str]]:
    """Per device: latency with its band and the dense model's figure, RAM/flash and fit, energy."""
    dense = {e.get("device"): e for e in (report.get("baseline") or {}).get("latency") or []}
    rows = []
    for entry in report.get("latency") or []:
        ms, kind = _ms(entry)
        if ms is None:
            continue
        band = ""
        if entry.get("low_ms") is not None and entry.get("high_ms") is not None:
            band = f" ({_num(entry['low_ms'])}-{_num(entry['high_ms'])})"
        was, _ = _ms(dense.get(entry.get("device"), {}))
        energy = ""
        if entry.get("energy_mj") is not None:
            energy = f"{_num(entry['energy_mj'])} mJ"
            if entry.get("energy_low_mj") is not None and entry.get("energy_high_mj") is not None:
                energy += f" ({_num(entry['energy_low_mj'])}-{_num(entry['energy_high_mj'])})"
        fits = {True: "fits", False: "DOES NOT FIT"}.get(entry.get("fits"), "")
        ram = f"RAM {entry['ram_bytes'] / 1024:.1f} KiB" if entry.get("ram_bytes") is not None else ""
        rows.append(
            {
                "device": str(entry.get("device")),
                "latency": f"{_num(ms)} ms {kind}{band}",
                "dense": f"{_num(was)} ms" if was is not None else "",
                "memory": ", ".join(x for x in (ram, fits) if x),
                "energy": energy,
            }
        )
    return rows


def _headline(report: dict[str, Any]) -> list[tuple[str, str]]:
    acc, sparsity, size = report.get("accuracy", {}), report.get("sparsity", {}), report.get("size", {})
    rows = []
    if acc.get("before") is not None and acc.get("after") is not None:
        rows.append(
            (
                acc.get("metric", "accuracy"),
                f"{acc['before']:.4f} -> {acc['after']:.4f} ({acc.get('split', 'val')} split)",
            )
        )
    if sparsity.get("overall") is not None:
        target = f", target {sparsity['target']}" if sparsity.get("target") is not None else ""
        rows.append(("sparsity", f"{sparsity['overall']:.3f} overall{target}"))
    if size.get("tflite_bytes") is not None:
        was = (report.get("baseline") or {}).get("size", {}).get("tflite_bytes")
        gz = f" ({size['tflite_gzip_bytes'] / 1024:.1f} KB gzipped)" if size.get("tflite_gzip_bytes") else ""
        rows.append(
            (
                "size",
                f"{size['tflite_bytes'] / 1024:.1f} KB .tflite{gz}" + (f", dense {was / 1024:.1f} KB" if was else ""),
            )
        )
    return rows


def summary(job: dict[str, Any], report: dict[str, Any], model_path: Path, report_path: Path | None) -> str:
    """One screen: accuracy before/after, sparsity, size, and per device latency (band), memory, energy."""
    lines = [f"{job['id']} succeeded"]
    lines += [f"  {name:<10} {text}" for name, text in _headline(report)]
    for row in device_rows(report):
        extra = "; ".join(
            x for x in (f"dense {row['dense']}" if row["dense"] else "", row["memory"], row["energy"]) if x
        )
        lines.append(f"  latency    {row['device']}: {row['latency']}" + (f"; {extra}" if extra else ""))
    if report.get("guard", {}).get("note"):
        lines.append(f"  guard      {report['guard']['note']}")
    lines.append(f"  model      {model_path}")
    if report_path is not None:
        lines.append(f"  report     {report_path}")
    return "\n".join(lines)


def markdown(job_id: str, status: str, report: dict[str, Any] | None, misses: list[str], error: str = "") -> str:
    """A GitHub step summary ($GITHUB_STEP_SUMMARY): the verdict, the figures, the devices, the misses."""
    verdict = "passed" if status == "succeeded" and not misses else "failed"
    lines = [f"### Shears job `{job_id}`: {status}, budgets {verdict}", ""]
    if error:
        lines += [f"> {error}", ""]
    if report:
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {name} | {text} |" for name, text in _headline(report)]
        rows = device_rows(report)
        if rows:
            lines += ["", "| device | latency (band) | dense | memory | energy |", "| --- | --- | --- | --- | --- |"]
            lines += [
                f"| {r['device']} | {r['latency']} | {r['dense']} | {r['memory']} | {r['energy']} |" for r in rows
            ]
    if misses:
        lines += ["", f"**Budgets missed ({len(misses)}):**", ""] + [f"- {m}" for m in misses]
    return "\n".join(lines) + "\n"


def budget_checks(
    report: dict[str, Any],
    *,
    max_latency_ms: float | None = None,
    devices: tuple[str, ...] | list[str] = ("host",),
    max_size_kb: float | None = None,
    max_accuracy_drop: float | None = None,
) -> list[tuple[str, str | None]]:
    """Each budget given, by name, with its miss (None when met): the rows of the JUnit file."""
    checks: list[tuple[str, str | None]] = []
    if max_latency_ms is not None:
        for device in devices or ("host",):
            (miss,) = check_budgets(report, max_latency_ms=max_latency_ms, devices=[device]) or (None,)
            checks.append((f"latency on {device} <= {_num(max_latency_ms)} ms", miss))
    if max_size_kb is not None:
        (miss,) = check_budgets(report, max_size_kb=max_size_kb) or (None,)
        checks.append((f"size <= {_num(max_size_kb)} KB", miss))
    if max_accuracy_drop is not None:
        (miss,) = check_budgets(report, max_accuracy_drop=max_accuracy_drop) or (None,)
        checks.append((f"accuracy drop <= {_num(max_accuracy_drop)}", miss))
    return checks


def junit(job_id: str, status: str, checks: list[tuple[str, str | None]], error: str = "") -> str:
    """JUnit XML: one test case for the job and one per budget checked, a failure for each miss."""
    cases: list[tuple[str, str | None]] = [("job succeeded", None if status == "succeeded" else error or status)]
    cases += checks
    failures = sum(1 for _, miss in cases if miss)
    body = []
    for name, miss in cases:
        inner = f"<failure message={quoteattr(miss)}>{escape(miss)}</failure>" if miss else ""
        body.append(f'    <testcase classname="shears.{escape(job_id)}" name={quoteattr(name)}>{inner}</testcase>')
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<testsuites>\n  <testsuite name="shears" tests="{len(cases)}" failures="{failures}">\n'
        + "\n".join(body)
        + "\n  </testsuite>\n</testsuites>\n"
    )
