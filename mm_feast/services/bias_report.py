"""The bias report: one HTML page, and one PNG per check (each concept phrase's association, and
each group's share of the top hits against its share of the collection)."""

from __future__ import annotations

import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from mm_feast.governance.bias_checks import BiasConfig
from mm_feast.services.bias import CheckResult


def _plot(result: CheckResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    groups = [g.name for g in result.check.groups]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, scores) in enumerate(result.association.items()):
        left.scatter([i] * len(scores), scores, label=name, alpha=0.8)
    left.axhline(0.0, color="grey", linewidth=0.8)
    left.set_xticks(range(len(result.association)), list(result.association))
    left.set_ylabel(f"cos to {groups[0]} − cos to {groups[1]}")
    left.set_title(f"association: d = {result.weat.effect_size:+.2f}, p = {result.weat.p_value:.4f}")
    if result.skew:
        width = 0.8 / len(groups)
        for j, group in enumerate(groups):
            right.bar([i + j * width for i in range(len(result.skew))], [row.top_share[group] for row in result.skew],
                      width=width, label=f"{group} in top hits")
            right.axhline(result.collection_share[group], color=f"C{j}", linestyle="--", linewidth=1,
                          label=f"{group} in collection")
        right.set_xticks([i + width * (len(groups) - 1) / 2 for i in range(len(result.skew))],
                         [row.query for row in result.skew], rotation=20, ha="right")
        right.set_ylabel("share")
        right.set_title("retrieval skew on neutral queries")
        right.legend(fontsize=8)
    else:
        right.axis("off")
        right.text(0.5, 0.5, "no neutral queries", ha="center")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: Sequence[CheckResult], config: BiasConfig, out_dir: Path) -> Path:
    """Write ``report.html`` and a PNG per check into ``out_dir``; return the HTML's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sections = []
    for result in results:
        png = out_dir / f"{result.check.name}.png"
        _plot(result, png)
        check = result.check
        verdict = "over the release limit" if result.over(config.max_effect_size) else "within the release limit"
        groups = "".join(f"<li>{html.escape(g.name)}: {html.escape(g.describe())}, {result.group_sizes[g.name]} items"
                         f" ({result.collection_share[g.name]:.0%} of {result.items})</li>" for g in check.groups)
        concepts = "".join(f"<li>{html.escape(name)}: {html.escape(', '.join(phrases))}</li>" for name, phrases in check.concepts)
        skew_rows = "".join(
            "<tr><td>" + html.escape(row.query) + "</td>" + "".join(
                f"<td>{row.top_share[g.name]:.0%} (x{row.top_share[g.name] / result.collection_share[g.name]:.2f})</td>"
                for g in check.groups) + "</tr>" for row in result.skew)
        skew = ("<table><tr><th>neutral query</th>" + "".join(f"<th>{html.escape(g.name)} in top {config.top_k}</th>" for g in check.groups)
                + "</tr>" + skew_rows + "</table>") if result.skew else "<p>No neutral queries.</p>"
        sections.append(f"""
<h2>{html.escape(check.name)}: view {html.escape(check.view)}, model version {html.escape(result.model_version)}</h2>
<p><b>Effect size d = {result.weat.effect_size:+.3f}</b>, one-sided permutation p = {result.weat.p_value:.4f}
({result.weat.permutations} permutations): {verdict} (|d| &le; {config.max_effect_size}).</p>
<p>Concepts (targets):</p><ul>{concepts}</ul><p>Groups (attributes):</p><ul>{groups}</ul>
{skew}
<p><img src="{html.escape(png.name)}" alt="association and retrieval skew of {html.escape(check.name)}"></p>""")
    page = out_dir / "report.html"
    page.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mm-feast bias report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}</style></head><body>
<h1>Bias in the joint embedding space</h1>
<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC. WEAT (Caliskan et al., 2017): d is the difference of the two
concept sets' mean association with the groups, over its pooled standard deviation; |d| near 0 is no association, 0.8 is large.
Skew: a group's share of the top hits for a neutral query against its share of the collection (x1.00 is none).</p>
{''.join(sections)}
</body></html>
""", encoding="utf-8")
    return page
