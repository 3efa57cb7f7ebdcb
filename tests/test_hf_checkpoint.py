"""Hugging Face checkpoints (config.json + model*.safetensors) load as Meta's: same names, same
q/k row order, same trace. The directories are written by transformers' own save_pretrained."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from reference.formats import load_checkpoint
from reference.formats.synthesize import synthesize
from reference.config import PRESETS
from reference.errors import InputError
from reference.verify.parity import hf_model
from reference.run import run_trace

PROMPT = [128000, 1820, 4320, 311, 279, 17139, 3488, 315, 2324, 11, 279, 15861, 11, 323, 4395, 374, 220]


def save_hf(ckpt, out: Path, **save_options) -> Path:
    """`ckpt` as transformers writes a LlamaForCausalLM: bf16 safetensors and config.json."""
    model = hf_model(ckpt.weights, ckpt.args, ckpt.tied, dtype=torch.bfloat16)
    model.save_pretrained(out, **save_options)
    return out


@pytest.fixture(scope="module")
def hf_dir(tiny, tmp_path_factory):
    """The tiny checkpoint in Hugging Face's layout, in several files with an index."""
    return save_hf(tiny, tmp_path_factory.mktemp("hf") / "tiny-hf", max_shard_size="20MB")


def clone(directory: Path, out: Path) -> Path:
    """A copy to break: JSON files copied, weights linked (they are only ever replaced, never edited)."""
    out.mkdir()
    for f in directory.iterdir():
        if f.suffix == ".json":
            shutil.copy(f, out / f.name)
        else:
            (out / f.name).symlink_to(f)
    return out


def edit_json(file: Path, change) -> None:
    data = json.loads(file.read_text())
    change(data)
    file.write_text(json.dumps(data))


def load_error(directory: Path, *parts: str) -> str:
    with pytest.raises(InputError) as excinfo:
        load_checkpoint(directory)
    message = str(excinfo.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message
    return message


# --- loading ---


def test_sharded_hf_directory_traces_identically_to_its_meta_twin(tiny, hf_dir):
    assert (hf_dir / "model.safetensors.index.json").exists() and len(list(hf_dir.glob("model-*.safetensors"))) > 1
    ckpt = load_checkpoint(hf_dir)
    assert ckpt.args == tiny.args and sorted(ckpt.weights) == sorted(tiny.weights)
    ours, theirs = run_trace(PROMPT, tiny.weights, tiny.args), run_trace(PROMPT, ckpt.weights, ckpt.args)
    for name in ours:
        assert torch.equal(ours[name], theirs[name]), name


def test_q_and_k_rows_come_back_in_metas_order(tiny, hf_dir):
    ckpt = load_checkpoint(hf_dir)
    for name in ("layers.2.attention.wq.weight", "layers.2.attention.wk.weight", "layers.2.attention.wv.weight"):
        assert torch.equal(ckpt.weights[name], tiny.weights[name]), name


def test_single_file_hf_directory_loads(tmp_path):
    meta = load_checkpoint(synthesize("tiny", seed=2, out_dir=tmp_path / "meta", n_layers=1))
    hf = save_hf(meta, tmp_path / "hf")
    assert sorted(p.name for p in hf.glob("*.safetensors")) == ["model.safetensors"]
    ckpt = load_checkpoint(hf)
    assert all(torch.equal(ckpt.weights[name], t) for name, t in meta.weights.items())


def test_tied_hf_model_loads_without_output_weight(tmp_path):
    meta = load_checkpoint(synthesize("tiny", seed=0, out_dir=tmp_path / "meta", n_layers=1, tied=True))
    ckpt = load_checkpoint(save_hf(meta, tmp_path / "hf"))
    assert ckpt.tied and "output.weight" not in ckpt.weights


def test_sharded_hf_directory_without_an_index_loads(tiny, hf_dir, tmp_path):
    d = clone(hf_dir, tmp_path / "hf")
    (d / "model.safetensors.index.json").unlink()
    assert torch.equal(load_checkpoint(d).weights["norm.weight"], tiny.weights["norm.weight"])


def test_hf_loading_maps_the_files_and_copies_only_wq_and_wk(hf_dir):
    def rss_anon() -> int:  # bytes
        status = Path("/proc/self/status").read_text()
        return int(next(line.split()[1] for line in status.splitlines() if line.startswith("RssAnon:"))) * 1024

    load_checkpoint(hf_dir)  # the first load also builds the tokenizer; measure a second one
    before = rss_anon()
    ckpt = load_checkpoint(hf_dir)
    grown = rss_anon() - before
    qk = sum(t.nbytes for name, t in ckpt.weights.items() if name.endswith(("wq.weight", "wk.weight")))
    assert grown < qk + 4e6, f"RssAnon grew by {grown / 1e6:.1f} MB"
    assert str(next(hf_dir.glob("model-*.safetensors")).resolve()) in Path("/proc/self/maps").read_text()


def test_transformers_4_config_spelling_loads(hf_dir, tmp_path):
    """Published config.json files say rope_theta and rope_scaling (transformers 5 says rope_parameters)."""
    d = clone(hf_dir, tmp_path / "hf")

    def to_v4(config):
        config.pop("rope_parameters")
        config.update(rope_theta=500000.0, max_position_embeddings=131072, rope_scaling={
            "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"})

    edit_json(d / "config.json", to_v4)
    args = load_checkpoint(d).args
    assert args == PRESETS["tiny"].replace(use_scaled_rope=True, rope_scale_factor=32.0, max_seq_len=131072)


def test_generate_runs_on_a_hf_directory(tiny, hf_dir, capsys):
    from reference.cli import main
    from reference.generate import generate

    assert main(["generate", "--checkpoint", str(hf_dir), "--prompt", "Hello", "--temperature", "0",
                 "--max-new-tokens", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["tokens"] == list(generate(result["prompt_tokens"], tiny.weights, tiny.args, max_new_tokens=4,
                                             temperature=0))


# --- broken directories: one line naming the file ---


def test_shard_named_by_the_index_but_missing_is_named(hf_dir, tmp_path):
    d = clone(hf_dir, tmp_path / "hf")
    (d / "model-00002-of-00003.safetensors").unlink()
    load_error(d, str(d / "model.safetensors.index.json"), "model-00002-of-00003.safetensors, which is missing")


def test_tensor_the_index_promises_but_the_file_lacks_is_named(hf_dir, tmp_path):
    d = clone(hf_dir, tmp_path / "hf")
    edit_json(d / "model.safetensors.index.json",
              lambda index: index["weight_map"].update({"model.layers.0.mlp.extra.weight": "model-00001-of-00003.safetensors"}))
    load_error(d, str(d / "model-00001-of-00003.safetensors"), "has no model.layers.0.mlp.extra.weight")


def test_untied_config_without_lm_head_is_refused(tmp_path):
    meta = load_checkpoint(synthesize("tiny", seed=0, out_dir=tmp_path / "meta", n_layers=1, tied=True))
    d = save_hf(meta, tmp_path / "hf")
    edit_json(d / "config.json", lambda config: config.update(tie_word_embeddings=False))
    load_error(d, str(d), "lm_head.weight", "tie_word_embeddings is false")


def test_other_model_types_are_refused(hf_dir, tmp_path):
    d = clone(hf_dir, tmp_path / "hf")
    edit_json(d / "config.json", lambda config: config.update(model_type="mistral"))
    load_error(d, str(d / "config.json"), "model_type is 'mistral'")


def test_config_missing_a_key_is_named(hf_dir, tmp_path):
    d = clone(hf_dir, tmp_path / "hf")
    edit_json(d / "config.json", lambda config: config.pop("num_hidden_layers"))
    load_error(d, str(d / "config.json"), "missing key 'num_hidden_layers'")


def test_config_without_safetensors_is_refused(hf_dir, tmp_path):
    d = tmp_path / "hf"
    d.mkdir()
    shutil.copy(hf_dir / "config.json", d)
    (d / "pytorch_model.bin").write_bytes(b"")
    load_error(d, str(d), "no model*.safetensors")


def test_truncated_safetensors_file_is_refused(hf_dir, tmp_path):
    d = clone(hf_dir, tmp_path / "hf")
    name = "model-00001-of-00003.safetensors"
    (d / name).unlink()
    (d / name).write_bytes((hf_dir / name).read_bytes()[:1000])
    load_error(d, str(d / name), "not a valid safetensors file")


def test_tensor_in_two_files_without_an_index_is_refused(hf_dir, tmp_path):
    d = clone(hf_dir, tmp_path / "hf")
    (d / "model.safetensors.index.json").unlink()
    (d / "model-extra.safetensors").symlink_to(hf_dir / "model-00003-of-00003.safetensors")
    load_error(d, "is also in")
