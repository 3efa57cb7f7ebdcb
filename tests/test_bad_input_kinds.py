"""Values of the wrong kind (#14, class 2): a string where a bool belongs, a zero head count,
a key given twice, are refused in one line naming the key — never taken silently."""

import json

from reference.cli import main

from helpers import walk_refused, write_checkpoint

# The tiny preset as Hugging Face's config.json spells it.
TINY_HF = {"model_type": "llama", "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 8,
           "num_key_value_heads": 2, "vocab_size": 128256, "intermediate_size": 384, "rms_norm_eps": 1e-5,
           "max_position_embeddings": 2048, "rope_theta": 500000.0, "tie_word_embeddings": False}


def hf_dir(tmp_path, **changes):
    """A directory that loads as Hugging Face's up to its config (the weights file is empty)."""
    (tmp_path / "config.json").write_text(json.dumps({**TINY_HF, **changes}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    return tmp_path


def test_tie_word_embeddings_as_the_string_false_is_refused_not_taken_as_true(capsys, tmp_path):
    walk_refused(capsys, hf_dir(tmp_path, tie_word_embeddings="false"), "config.json", "tie_word_embeddings", "'false'")


def test_num_key_value_heads_0_is_refused_not_taken_as_num_attention_heads(capsys, tmp_path):
    walk_refused(capsys, hf_dir(tmp_path, num_key_value_heads=0), "config.json", "num_key_value_heads", "got 0")


def test_a_string_head_count_in_config_json_names_the_key(capsys, tmp_path):
    walk_refused(capsys, hf_dir(tmp_path, num_hidden_layers="4"), "num_hidden_layers", "'4'")


def test_rope_scaling_that_is_not_an_object_names_the_key(capsys, tmp_path):
    walk_refused(capsys, hf_dir(tmp_path, rope_scaling=5), "config.json", "rope_scaling", "5")


def test_a_string_rope_theta_in_config_json_names_the_key(capsys, tmp_path):
    walk_refused(capsys, hf_dir(tmp_path, rope_theta="big"), "rope_theta", "'big'")


def test_n_kv_heads_0_in_params_json_is_refused(capsys, tiny_dir, tmp_path):
    params = json.loads((tiny_dir / "params.json").read_text())
    ckpt = write_checkpoint(tiny_dir, tmp_path / "ckpt", params={**params, "n_kv_heads": 0})
    walk_refused(capsys, ckpt, "params.json", "n_kv_heads", "got 0")


def test_a_key_given_twice_in_params_json_is_refused_by_name(capsys, tiny_dir, tmp_path):
    ckpt = write_checkpoint(tiny_dir, tmp_path / "ckpt")
    text = (ckpt / "params.json").read_text()
    (ckpt / "params.json").write_text(text.replace('"dim": 128', '"dim": 128, "dim": 4096'))
    walk_refused(capsys, ckpt, "params.json", "'dim'", "twice")


def test_a_key_given_twice_in_config_json_is_refused_by_name(capsys, tmp_path):
    hf_dir(tmp_path)
    text = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(text.replace('"vocab_size": 128256', '"vocab_size": 128256, "vocab_size": 7'))
    walk_refused(capsys, tmp_path, "config.json", "'vocab_size'", "twice")


def test_a_checkpoint_under_an_unknown_users_home_is_one_line(capsys):
    code = main(["walk", "--checkpoint", "~nosuchuser-llama3/x", "--prompt", "hi"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "~nosuchuser-llama3/x: no such user" in err


def test_json_nested_100000_deep_is_one_line_not_a_recursion_error(capsys, tmp_path):
    (tmp_path / "params.json").write_text("[" * 100_000 + "]" * 100_000)
    code = main(["walk", "--checkpoint", str(tmp_path), "--prompt", "hi"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nested too deeply" in err
