"""One source of defaults: docs/method.md's tables, the config objects, the library's functions
and ``nsnet train``'s flags say the same thing."""
from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from nsnet.cli import train as train_cli
from nsnet.config import PipelineConfig, RecognizerConfig, SamplerConfig
from nsnet.training import TrainConfig
from nsnet.training.losses import NSNetLoss, nonsalient_loss
from nsnet.training.pseudo_labels import PseudoLabelRule, make_pseudo_labels

METHOD = Path(__file__).resolve().parent.parent / "docs" / "method.md"
CLASSES = {c.__name__: c for c in (PipelineConfig, SamplerConfig, RecognizerConfig, TrainConfig)}
SECTIONS = {"sampler": SamplerConfig, "recognizer": RecognizerConfig}


def _default(cls: type, name: str):
    f = next((f for f in dataclasses.fields(cls) if f.name == name), None)
    assert f is not None, f"{cls.__name__} has no field {name}"
    assert f.default is not dataclasses.MISSING, f"{cls.__name__}.{name} has no plain default"
    return f.default


def _value(cell: str):
    """A table cell as a value: JSON (numbers, true/false) or a bare string."""
    text = cell.strip().strip("`")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _section(title: str) -> list[list[str]]:
    """The rows (cells) of the first table under ``## title`` in docs/method.md."""
    text = METHOD.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/method.md has no section {title!r}"
    rows = [line for line in match.group(1).splitlines() if line.startswith("|")]
    assert len(rows) > 2 and set(rows[1].replace("|", "")) <= set("-: "), rows[:2]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows[2:]]


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-12)
    return a == b


def test_the_defaults_table_matches_the_config_objects_and_the_cli():
    rows = _section("Defaults")
    parser = train_cli.build_parser()
    actions = {opt: a for a in parser._actions for opt in a.option_strings}
    cli = train_cli.config_from_args(["--data", "d"])  # the CLI with no flags: the library's defaults
    seen = set()
    for field_cell, default_cell, flag_cell in rows:
        cls_name, _, name = field_cell.strip("`").partition(".")
        cls = CLASSES[cls_name]
        documented, actual = _value(default_cell), _default(cls, name)
        assert _same(documented, actual), f"{field_cell}: docs/method.md says {documented!r}, the code {actual!r}"
        # the CLI flag exists, shows the same default and, unset, gives it
        action = actions[flag_cell.strip("`")]
        assert f"(default: {actual})" in action.help, (flag_cell, action.help)
        if cls is TrainConfig:
            got = getattr(cli, name)
        elif cls is PipelineConfig:
            got = getattr(cli.pipeline, name)
        else:
            got = getattr(getattr(cli.pipeline, cls_name.replace("Config", "").lower()), name)
        assert _same(got, actual), (field_cell, got)
        seen.add((cls_name, name))
    # every knob of the method is in the table (the fields a run sets itself are not knobs)
    wanted = {("SamplerConfig", f.name) for f in dataclasses.fields(SamplerConfig)} - {
        ("SamplerConfig", "num_classes"), ("SamplerConfig", "freeze_backbone")}
    wanted |= {("RecognizerConfig", f.name) for f in dataclasses.fields(RecognizerConfig)} - {
        ("RecognizerConfig", "freeze_backbone")}
    wanted |= {("PipelineConfig", n) for n in ("num_frames", "k", "lam")}
    wanted |= {("TrainConfig", n) for n in ("pseudo_rule", "gamma", "rho", "tau", "alpha", "beta", "non_mode",
                                            "recognizer_epochs", "sampler_epochs", "batch_size", "lr", "weight_decay",
                                            "finetune_lr", "grad_accum", "seed")}
    assert wanted <= seen, sorted(wanted - seen)


def test_the_knob_tables_of_each_section_agree_with_the_config_objects():
    """The per-section tables (``| knob | field | default |``) and the pseudo-label rules table."""
    checked = 0
    for line in METHOD.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        for i, cell in enumerate(cells[:-1]):
            m = re.fullmatch(r"`(?:(\w+Config)\.)?(\w+)(?:\.(\w+))?`", cell)
            if not m or i + 1 >= len(cells):
                continue
            cls_name, first, second = m.groups()
            if cls_name:
                cls, name = CLASSES[cls_name], first
            elif second and first in SECTIONS:
                cls, name = SECTIONS[first], second
            else:
                continue
            value = re.match(r"`([^`]+)`|([-\d.e]+)", cells[i + 1])
            assert value, line
            documented = _value(value.group(1) or value.group(2))
            assert _same(documented, _default(cls, name)), line
            checked += 1
        for cell in cells:  # the pseudo-label rules' knobs: `tau` = 0.5
            knob = re.fullmatch(r"`(\w+)` = ([\d.]+)", cell)
            if knob:
                assert _same(float(knob.group(2)), _default(TrainConfig, knob.group(1))), line
                checked += 1
        if cells and "(**default**)" in cells[0]:  # the rule marked as the default
            assert cells[0].split()[0].strip("`") == _default(TrainConfig, "pseudo_rule"), line
            checked += 1
    assert checked >= 15, checked


def test_the_library_functions_default_to_the_documented_formulation():
    # L_non: KL(uniform || softmax over the C real classes), computed here by hand
    v = torch.tensor([[1.0, 2.0, 0.0, -1.0]])  # C = 3 plus background
    p = F.softmax(v[0, :3], -1)
    kl = sum((1 / 3) * (math.log(1 / 3) - math.log(float(p[i]))) for i in range(3))
    assert math.isclose(float(nonsalient_loss(v)), kl, rel_tol=1e-5)
    assert not math.isclose(float(nonsalient_loss(v)), float(-F.log_softmax(v, -1)[0, 3]), rel_tol=1e-3)
    heads = type("H", (), dict(frame_logits=torch.zeros(1, 2), video_logits=v, nonsalient_logits=v))
    terms = NSNetLoss()(heads, torch.tensor([[1.0, 0.0]]), torch.tensor([1]))
    assert math.isclose(float(terms.non), kl, rel_tol=1e-5)
    assert math.isclose(float(terms.total), float(terms.frame + terms.sal + terms.non), rel_tol=1e-6)  # alpha = beta = 1
    # pseudo labels: the threshold rule, c_t >= tau = 0.5 (relative at gamma 0.8 would mark only 0.9)
    conf = torch.tensor([0.1, 0.5, 0.45, 0.9, 0.2])
    assert make_pseudo_labels(conf).tolist() == [0, 1, 0, 1, 0]
    assert PseudoLabelRule() == TrainConfig().pseudo_labels


def test_the_sampler_docstring_describes_the_default_non_salient_target():
    import nsnet.models.sampler as sampler

    doc = " ".join(sampler.__doc__.split())
    assert "to call ``z_n`` background" not in doc
    assert "pushed to uniform" in doc and 'non_mode = "uniform"' in doc
