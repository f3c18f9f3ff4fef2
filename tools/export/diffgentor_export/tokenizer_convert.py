"""Slow tokenizer files -> HF `tokenizer.json`, for snapshots that ship only the slow files.

The runtime reads only `tokenizer.json` (src/core/tokenizer.cpp). Real snapshots of Qwen-Image(-Edit) and
FLUX.1's CLIP `tokenizer/` hold `vocab.json` + `merges.txt`; a T5 folder may hold only `spiece.model`. The
layouts written here are the ones transformers' converters produce (`convert_slow_tokenizer.py`: Qwen2Converter,
CLIPConverter, T5Converter / SpmConverter), which is also the layout of the published fast files in
tests/data/tokenizers/. No `tokenizers`, `sentencepiece` or `protobuf` package is needed: the
SentencePiece model is read with the small protobuf reader below.
"""
from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
CLIP_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"


class ConversionError(ValueError):
    pass


def _byte_level(add_prefix_space=False, trim_offsets=False, use_regex=False) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": trim_offsets,
            "use_regex": use_regex}


def _added_tokens(config: dict) -> list:
    """tokenizer_config.json `added_tokens_decoder` -> tokenizer.json `added_tokens`, by id."""
    out = []
    for key, t in sorted(config.get("added_tokens_decoder", {}).items(), key=lambda kv: int(kv[0])):
        out.append({"id": int(key), "content": t["content"], "single_word": t.get("single_word", False),
                    "lstrip": t.get("lstrip", False), "rstrip": t.get("rstrip", False),
                    "normalized": t.get("normalized", False), "special": t.get("special", False)})
    return out


def _document(added, normalizer, pre_tokenizer, post_processor, decoder, model) -> dict:
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": normalizer,
            "pre_tokenizer": pre_tokenizer, "post_processor": post_processor, "decoder": decoder, "model": model}


def read_merges(path: Path) -> list:
    merges = []
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if not line or line.startswith("#version"):
            continue
        if len(line.split(" ")) != 2:
            raise ConversionError(f"{path}: merge line {line!r} is not two symbols")
        merges.append(line)
    return merges


def _bpe_model(vocab: dict, merges: list, unk=None, suffix="") -> dict:
    return {"type": "BPE", "dropout": None, "unk_token": unk, "continuing_subword_prefix": "",
            "end_of_word_suffix": suffix, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": vocab, "merges": merges}


def qwen2(folder: Path, config: dict) -> dict:
    """Qwen2/2.5(-VL) byte-level BPE (transformers Qwen2Converter)."""
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    pre = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
        _byte_level()]}
    return _document(_added_tokens(config), {"type": "NFC"}, pre, _byte_level(), _byte_level(),
                     _bpe_model(vocab, read_merges(folder / "merges.txt")))


def clip(folder: Path, config: dict) -> dict:
    """CLIP BPE with `</w>` word ends (transformers CLIPConverter)."""
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    bos, eos = config.get("bos_token", "<|startoftext|>"), config.get("eos_token", "<|endoftext|>")
    unk = config.get("unk_token", eos)
    bos, eos, unk = (t["content"] if isinstance(t, dict) else t for t in (bos, eos, unk))
    for token in (bos, eos):
        if token not in vocab:
            raise ConversionError(f"{folder}/vocab.json has no {token}")
    normalizer = {"type": "Sequence", "normalizers": [
        {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": r"\s+"}, "content": " "}, {"type": "Lowercase"}]}
    pre = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": CLIP_SPLIT}, "behavior": "Removed", "invert": True},
        _byte_level(trim_offsets=True, use_regex=True)]}
    post = {"type": "RobertaProcessing", "sep": [eos, vocab[eos]], "cls": [bos, vocab[bos]], "trim_offsets": False,
            "add_prefix_space": False}
    decoder = _byte_level(add_prefix_space=True, trim_offsets=True, use_regex=True)
    return _document(_added_tokens(config), normalizer, pre, post, decoder,
                     _bpe_model(vocab, read_merges(folder / "merges.txt"), unk=unk, suffix="</w>"))


# ---- SentencePiece ModelProto, read without protobuf (sentencepiece_model.proto field numbers) ----------------

def _varint(buf: bytes, pos: int):
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise ConversionError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes):
    """Yields (field number, wire type, value) of one message; value is int, bytes or a float32's bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ConversionError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def read_spm(path: Path) -> dict:
    """pieces [(piece, score, type)], trainer fields (model_type, unk/bos/eos/pad ids, byte_fallback) and
    normalizer fields (name, precompiled_charsmap, add_dummy_prefix, ...) of a `.model` file."""
    pieces, trainer = [], {"model_type": 1, "unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1,
                           "byte_fallback": False}
    normalizer = {"name": "", "precompiled_charsmap": b"", "add_dummy_prefix": True,
                  "remove_extra_whitespaces": True, "escape_whitespaces": True}
    for number, _, value in _fields(Path(path).read_bytes()):
        if number == 1:  # SentencePiece
            piece, score, kind = "", 0.0, 1
            for n, _, v in _fields(value):
                if n == 1:
                    piece = v.decode("utf-8")
                elif n == 2:
                    score = struct.unpack("<f", v)[0]
                elif n == 3:
                    kind = v
            pieces.append((piece, score, kind))
        elif number == 2:  # TrainerSpec
            names = {3: "model_type", 35: "byte_fallback", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}
            for n, _, v in _fields(value):
                if n in names:
                    trainer[names[n]] = bool(v) if n == 35 else _signed(v)
        elif number == 3:  # NormalizerSpec
            names = {1: "name", 2: "precompiled_charsmap", 3: "add_dummy_prefix", 4: "remove_extra_whitespaces",
                     5: "escape_whitespaces"}
            for n, _, v in _fields(value):
                if n in names:
                    normalizer[names[n]] = v.decode() if n == 1 else v if n == 2 else bool(v)
    if not pieces:
        raise ConversionError(f"{path}: no pieces (not a SentencePiece model?)")
    return {"pieces": pieces, "trainer": trainer, "normalizer": normalizer}


def t5(folder: Path, config: dict) -> dict:
    """T5 Unigram from `spiece.model` (transformers T5Converter: SpmConverter plus `<extra_id_N>` pieces)."""
    spm = read_spm(folder / "spiece.model")
    if spm["trainer"]["model_type"] != 1:
        raise ConversionError(f"{folder}/spiece.model is not a Unigram model (model_type "
                              f"{spm['trainer']['model_type']})")
    vocab = [[p, s] for p, s, _ in spm["pieces"]]
    extra = int(config.get("extra_ids", 100))
    vocab += [[f"<extra_id_{i}>", 0.0] for i in range(extra - 1, -1, -1)]
    charsmap = spm["normalizer"]["precompiled_charsmap"]
    rest = [{"type": "Strip", "strip_left": False, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "\u2581"}]
    normalizer = {"type": "Sequence", "normalizers": ([{"type": "Precompiled", "precompiled_charsmap":
                                                        base64.b64encode(charsmap).decode("ascii")}]
                                                      if charsmap else []) + rest}
    eos_id = spm["trainer"]["eos_id"]
    eos = vocab[eos_id][0]
    post = {"type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}}, {"SpecialToken": {"id": eos, "type_id": 0}}],
            "special_tokens": {eos: {"id": eos, "ids": [eos_id], "tokens": [eos]}}}

    def meta(scheme):
        return {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True, "prepend_scheme": scheme}

    model = {"type": "Unigram", "unk_id": spm["trainer"]["unk_id"], "vocab": vocab,
             "byte_fallback": spm["trainer"]["byte_fallback"]}
    return _document(_added_tokens(config), normalizer, meta("first"), post, meta("always"), model)


CONVERTERS = {"Qwen2Tokenizer": qwen2, "Qwen2TokenizerFast": qwen2, "CLIPTokenizer": clip,
              "CLIPTokenizerFast": clip, "T5Tokenizer": t5, "T5TokenizerFast": t5}


# Tokenizers without a vocabulary: GLM-Image's glyph tokenizer maps each UTF-8 byte b to b + 3
# (src/core/glm_image_inputs.cpp).
BYTE_TOKENIZERS = ("ByT5Tokenizer",)


def ensure_tokenizer_json(folder: Path) -> str:
    """Writes `folder/tokenizer.json` when it is missing. Returns what happened ("kept" or "converted by X");
    raises ConversionError naming the folder and the class when there is no converter."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return "kept"
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    cls = config.get("tokenizer_class", "")
    if cls in BYTE_TOKENIZERS:
        return f"not needed ({cls}: ids are UTF-8 bytes + 3, computed by the runtime)"
    if cls not in CONVERTERS:
        raise ConversionError(f"{folder}: no tokenizer.json and no converter for tokenizer_class '{cls}' "
                              f"(supported: {', '.join(sorted(CONVERTERS))}); save the fast tokenizer with "
                              f"transformers (AutoTokenizer.from_pretrained(...).save_pretrained) and export again")
    doc = CONVERTERS[cls](folder, config)
    (folder / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    return f"converted by {CONVERTERS[cls].__name__}"
