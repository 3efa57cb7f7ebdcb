"""A checkpoint's hyper-parameters, read into `ModelArgs`: Meta's `params.json`, and the rule for
formats that store the SwiGLU width itself (Hugging Face's intermediate_size, GGUF's
feed_forward_length) instead of Meta's multiple_of and ffn_dim_multiplier.

`ModelArgs` itself checks every value (config.py); this module maps a file's keys onto its
fields, so a problem is one line naming the file and the key as the file spells it.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import META_FIELDS, PRESETS, ModelArgs
from ..errors import InputError, is_int
from ..files import read_json

_REQUIRED = ("dim", "n_layers", "n_heads", "vocab_size")
# Our name for each key of the optional "rope_scaling" object (Hugging Face's spelling).
_ROPE_SCALING_KEYS = {
    "factor": "rope_scale_factor",
    "low_freq_factor": "rope_low_freq_factor",
    "high_freq_factor": "rope_high_freq_factor",
    "original_max_position_embeddings": "rope_original_max_seq_len",
}
# Keys that appear in some of Meta's params.json files but do not change the forward pass.
_IGNORED_KEYS = ("max_batch_size",)
# The context length, where a params.json holds one. Meta's files never do: Meta passes it to
# `Llama3.build(ckpt_dir, max_seq_len, …)`, which adds it to the file's keys, so a file that
# also says "max_seq_len" fails there ("multiple values for keyword argument 'max_seq_len'").
# `meta_params` writes it in Hugging Face's spelling, which Meta's ModelArgs ignores; older
# files of ours say max_seq_len, and are still read.
_CONTEXT_KEYS = ("max_seq_len", "max_position_embeddings")


def args_from_params(params: dict, source: str = "params.json") -> ModelArgs:
    """Build `ModelArgs` from a parsed params.json; `source` names the file in errors."""
    if not isinstance(params, dict):
        raise InputError(f"{source}: expected a JSON object, got {type(params).__name__}")
    fields = {}
    for key, value in params.items():
        if key in _CONTEXT_KEYS:
            if not is_int(value) or value < 1:  # named as the file spells it
                raise InputError(f"{source}: {key} must be a positive integer, got {value!r}")
            if fields.get("max_seq_len", value) != value:
                raise InputError(f"{source}: max_seq_len and max_position_embeddings differ ({fields['max_seq_len']!r} "
                                 f"and {value!r}); give one")
            fields["max_seq_len"] = value
        elif key in META_FIELDS:
            fields[key] = value
        elif key == "rope_scaling":
            if not isinstance(value, dict):
                raise InputError(f"{source}: rope_scaling must be an object, got {value!r}")
            for sub, sub_value in value.items():
                if sub not in _ROPE_SCALING_KEYS:
                    if sub in ("rope_type", "type"):
                        continue
                    raise InputError(f"{source}: unknown key rope_scaling.{sub} (known: {', '.join(_ROPE_SCALING_KEYS)})")
                fields[_ROPE_SCALING_KEYS[sub]] = sub_value
        elif key not in _IGNORED_KEYS:
            raise InputError(f"{source}: unknown key {key!r} (known: {', '.join(META_FIELDS)}, rope_scaling, "
                             "max_position_embeddings)")
    for key in _REQUIRED:
        if key not in fields:
            raise InputError(f"{source}: missing required key {key!r}")
    if fields.get("n_kv_heads") is None:
        fields.pop("n_kv_heads", None)
    # Meta's params.json for Llama 3.2 says only "use_scaled_rope": true; its scale factor (32,
    # not 3.1's 8) lives in the model card. Recognise the published shapes and take theirs.
    if fields.get("use_scaled_rope") and "rope_scale_factor" not in fields:
        for preset in PRESETS.values():
            if preset.use_scaled_rope and all(fields.get(k) == getattr(preset, k) for k in _REQUIRED):
                fields["rope_scale_factor"] = preset.rope_scale_factor
                break
    if "max_seq_len" not in fields and fields.get("use_scaled_rope"):
        fields["max_seq_len"] = 131_072
    try:
        return ModelArgs(**fields)
    except InputError as e:
        raise InputError(f"{source}: {e}") from None


def load_params(path: str | Path) -> ModelArgs:
    """Read a `params.json` file; every problem is one line naming the file and the field."""
    params = read_json(Path(path), missing="a Meta checkpoint directory has params.json")
    return args_from_params(params, source=str(path))


def meta_params(args: ModelArgs) -> dict:
    """params.json as Meta writes it, which Meta's `Llama3.build` loads unchanged: Meta's keys
    (use_scaled_rope only when true, as Llama 3's own file has none) and, only where `args`
    differ from what those imply, two keys in Hugging Face's spelling that Meta's ModelArgs
    ignores and `load_params` reads: "rope_scaling" (Meta's code hard-codes 3.1's factor 8;
    a published 3.2 shape is read as factor 32), "max_position_embeddings" (the context:
    8192, or 131,072 with scaled RoPE, unless said).

    The tiny preset: Llama 3 8B's keys with its own values, and "max_position_embeddings": 2048.
    """
    full = args.to_params()
    params = {key: full[key] for key in META_FIELDS if key in full and key != "max_seq_len"}
    if not args.use_scaled_rope:
        del params["use_scaled_rope"]
    implied = args_from_params(params)
    if args.use_scaled_rope and any(getattr(args, f) != getattr(implied, f) for f in _ROPE_SCALING_KEYS.values()):
        params["rope_scaling"] = full["rope_scaling"]
    if args.max_seq_len != implied.max_seq_len:
        params["max_position_embeddings"] = args.max_seq_len
    return params


def save_params(args: ModelArgs, path: str | Path) -> None:
    Path(path).write_text(json.dumps(meta_params(args), indent=2) + "\n", encoding="utf-8")


def args_with_ffn_width(fields: dict, width: int) -> ModelArgs:
    """`ModelArgs` whose SwiGLU hidden size is exactly `width`, for formats that store the width
    itself (Hugging Face's intermediate_size, GGUF's feed_forward_length) instead of Meta's rule.

    A published model's shape gets its preset's multiple_of and ffn_dim_multiplier; any other
    gets multiple_of = width, which Meta's rule then rounds up to exactly width.
    """
    same_shape = [p for p in PRESETS.values() if (p.dim, p.n_heads, p.n_kv_heads) == (
        fields["dim"], fields["n_heads"], fields.get("n_kv_heads", fields["n_heads"]))]
    for p in same_shape + list(PRESETS.values()):
        candidate = ModelArgs(**{**fields, "multiple_of": p.multiple_of, "ffn_dim_multiplier": p.ffn_dim_multiplier})
        if candidate.hidden_dim == width:
            return candidate
    return ModelArgs(**fields, multiple_of=width, ffn_dim_multiplier=width / int(8 * fields["dim"] / 3))
