"""Collect the last runs' tables under ``results/`` into ``RESULTS.md``.

    python experiments/results_md.py [--results results] [--out RESULTS.md] [--intro FILE]

Every folder under ``--results`` that holds a ``table.md`` becomes one section: the table, the
command that produced it (rebuilt from the run's recorded arguments), its date and machine (from
``results.json``/``table.json`` ``meta``), and links to the figures (``*.png``) written beside it.
Sections follow the order of the folder names; ``--intro`` prepends a hand-written preface.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _meta(folder: Path) -> dict:
    for name in ("results.json", "table.json"):
        f = folder / name
        if f.is_file():
            try:
                data = json.loads(f.read_text())
            except json.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                return {}
            return data.get("meta") or ({"args": data["args"]} if "args" in data else {})
    return {}


def _command(folder: Path, results: Path, meta: dict) -> str:
    name = folder.relative_to(results).parts[0]
    # Folder names are the script's name, or the script's name + a suffix given with --out.
    scripts = sorted((p.stem for p in (ROOT / "experiments").glob("*.py")), key=len, reverse=True)
    script = next((s for s in scripts if name == s or name.startswith(s + "_")), name)
    args = meta.get("args") or {}
    flags = [] if name == script else [f"--out results/{name}"]
    for key, value in args.items():
        if isinstance(value, str):
            try:  # some scripts record str(value): "[0.05, 0.1]", "False"
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                pass
        if key in ("out", "shared", "data") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif isinstance(value, (list, tuple)):
            flags.append(" ".join([flag] + [shlex.quote(str(v)) for v in value]))
        else:
            flags.append(f"{flag} {value}")
    return f"python experiments/{script}.py " + " ".join(flags)


def section(folder: Path, results: Path, out_dir: Path) -> str:
    meta = _meta(folder)
    title = str(folder.relative_to(results))
    lines = [f"## {title}", ""]
    if meta.get("args") is not None:
        lines.append(f"Command: `{_command(folder, results, meta)}`  ")
    facts = [f"{k}: {meta[k]}" for k in ("date", "machine", "cpus", "device", "jax", "note") if k in meta]
    if facts:
        lines.append("Run: " + "; ".join(str(f) for f in facts))
    lines += ["", (folder / "table.md").read_text().strip(), ""]
    for png in sorted(folder.glob("*.png")):
        lines.append(f"![{png.stem}]({Path(os.path.relpath(png, out_dir)).as_posix()})")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--out", default=str(ROOT / "RESULTS.md"))
    p.add_argument("--intro", default=str(ROOT / "experiments" / "results_intro.md"),
                   help="markdown file to put before the sections (default: experiments/results_intro.md)")
    args = p.parse_args(argv)
    results, out = Path(args.results), Path(args.out)
    if not results.is_dir():
        raise SystemExit(f"results_md: no results folder at {results}; run an experiment first.")
    folders = sorted({t.parent for t in results.rglob("table.md")})
    intro = Path(args.intro) if args.intro else None
    parts = [intro.read_text().strip(), ""] if intro and intro.is_file() else ["# Results", ""]
    parts += [section(f, results, out.parent) for f in folders]
    out.write_text("\n".join(parts))
    print(f"wrote {out} ({len(folders)} sections)")


if __name__ == "__main__":
    main()
