"""Benchmark figures in words (`standby bench replay|failover` without --json): nested figures
flattened, truths as yes/no, a missing figure said so; never a Python repr."""

from __future__ import annotations

import re

from standby.cli.bench import figure_lines


def test_figures_read_as_words() -> None:
    out = {"mail_ops_per_s": 4321, "digest_equal": {"db": True, "blob": True, "index": False},
           "ratio_to_ceiling_catchup": None, "cpu": {"worker": {"fold": 1.5}},
           "notes": ["a", "b"], "empty": []}
    lines = figure_lines(out, width=30)
    assert f"{'mail_ops_per_s':30s} 4321" in lines
    assert f"{'digest_equal.db':30s} yes" in lines
    assert f"{'digest_equal.index':30s} no" in lines
    assert f"{'ratio_to_ceiling_catchup':30s} not measured" in lines
    assert f"{'cpu.worker.fold':30s} 1.5" in lines
    assert f"{'notes':30s} a, b" in lines and f"{'empty':30s} none" in lines
    text = "\n".join(lines)
    assert not re.search(r"\bNone\b|\bTrue\b|\bFalse\b|[{}\[\]]", text), text
