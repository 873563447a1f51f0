"""What changes at the real scale: CoCoOp on 1,000 classes evaluates in bounded text-encoder calls."""

from __future__ import annotations

import pytest
import torch
from method_helpers import build


def test_cocoop_on_1000_classes_encodes_at_most_the_chunk_and_gives_the_same_logits(tiny_backbone, monkeypatch):
    import bench.methods.cocoop as cocoop

    m = build("cocoop", tiny_backbone)
    m.set_classnames([f"class {i}" for i in range(1000)])
    m.eval()
    f = torch.randn(5, tiny_backbone.embed_dim)
    calls: list[int] = []
    encode = m.backbone.encode_text

    def counting(ids, *args, **kwargs):
        calls.append(len(ids))
        return encode(ids, *args, **kwargs)

    monkeypatch.setattr(m.backbone, "encode_text", counting)
    with torch.inference_mode():
        chunked = m(features=f)
        assert calls == [1000] * 5  # one image's 1,000 prompts per call
        monkeypatch.setattr(cocoop, "TEXT_SEQUENCES", 10**9)
        whole = m(features=f)
    assert calls[-1] == 5000
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
    assert torch.equal(chunked.argmax(-1), whole.argmax(-1))


@pytest.mark.parametrize("n_cls", [5, 100])
def test_cocoop_small_class_lists_keep_whole_batches(tiny_backbone, monkeypatch, n_cls):
    m = build("cocoop", tiny_backbone)
    m.set_classnames([f"class {i}" for i in range(n_cls)])
    calls: list[int] = []
    encode = m.backbone.encode_text
    monkeypatch.setattr(m.backbone, "encode_text", lambda ids, *a, **k: calls.append(len(ids)) or encode(ids, *a, **k))
    with torch.no_grad():
        m(features=torch.randn(8, tiny_backbone.embed_dim))
    assert max(calls) <= 1024 and sum(calls) == 8 * n_cls


def _record(seed: int, accuracy: float) -> dict:
    from bench.sweep.record import KEY

    key = {k: "x" for k in KEY} | {"seed": seed, "shots": 16, "protocol": "base2novel", "subset": "base"}
    return {**key, "accuracy": accuracy, "train_dataset": "x", "options": {"train.lr": 0.1}, "per_class_accuracy": {}}


def test_the_report_reads_changed_records_again_and_only_those(tmp_path, monkeypatch):
    import json
    import os

    from bench.report import tables as report
    from bench.sweep.record import Record

    folder = tmp_path / "records" / "real"
    folder.mkdir(parents=True)
    for seed in range(3):
        (folder / f"r{seed}.json").write_text(json.dumps(_record(seed, 50.0 + seed)))
    (folder / "bad.json").write_text("{half")
    first = report.load_records(tmp_path)
    assert sorted(first["accuracy"]) == [50.0, 51.0, 52.0] and set(first["variant"]) == {"train.lr=0.1"}

    reads: list[str] = []
    read = Record.read
    monkeypatch.setattr(Record, "read", staticmethod(lambda p: reads.append(os.path.basename(p)) or read(p)))
    (folder / "r1.json").write_text(json.dumps(_record(1, 99.0)))  # rewritten (new mtime)
    (folder / "r2.json").unlink()
    unreadable: list = []
    again = report.load_records(tmp_path, unreadable=unreadable)
    assert sorted(again["accuracy"]) == [50.0, 99.0]
    assert sorted(reads) == ["bad.json", "r1.json"]  # the unchanged record came from the index
    assert [os.path.basename(p) for p, _ in unreadable] == ["bad.json"]  # listed every time

    (tmp_path / "cache" / "records-index.json").write_text("[not an index")  # damaged: ignored, rebuilt
    assert sorted(report.load_records(tmp_path)["accuracy"]) == [50.0, 99.0]
