"""Small diffusers pipelines with seeded random weights, one per model type, for the parity harness.

Nothing is downloaded: tokenizers come from tests/data/tokenizers (the real Qwen2/Qwen3/CLIP/T5
vocabularies, so template token counts such as Qwen's 64-token prefix hold), every model is built from a small
config. Geometry that the runtime takes as given stays real: Qwen2.5-VL patch 14 / temporal 2 / merge 2 /
window 112, latent channels 16 (32 for FLUX.2), VAE factor 8, packing 2x2. Scheduler configs are the shipped
ones (docs/numerics.md, "Scheduler configurations"). Needs torch >= 2.5, diffusers and transformers.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

SCHEDULERS = {
    "qwen": dict(shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9, base_image_seq_len=256,
                 max_image_seq_len=8192, time_shift_type="exponential", shift_terminal=0.02),
    "flux": dict(shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                 max_image_seq_len=4096, time_shift_type="exponential"),
    "glm": dict(shift=1.0, use_dynamic_shifting=True, base_shift=0.25, max_shift=0.75, base_image_seq_len=256,
                time_shift_type="linear"),
}
# Widths by size: "tiny" for the parity test (seconds on a CPU), "small" for the benchmark against diffusers
# (bench/vs_diffusers.py): text width, transformer head width and heads, VAE channels. `D` is the one in use.
SIZES = {
    "tiny": dict(text=16, text_heads=2, mrope=[1, 1, 2], head=16, heads=2, vae=8, qwen_vae=16),
    "small": dict(text=64, text_heads=2, mrope=[4, 6, 6], head=32, heads=4, vae=32, qwen_vae=32),
}
D = SIZES["tiny"]


def _axes(n: int):
    """RoPE axes summing to the head width: (1/4, 3/8, 3/8) for 3 axes, quarters for 4."""
    h = D["head"]
    return [h // 4, 3 * h // 8, 3 * h // 8] if n == 3 else [h // 4] * 4


QWEN_SPECIAL = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652,
                    vision_end_token_id=151653)


def _tokenizer(testdata: Path, name: str, chat_template: str | None = None, extra_special=()):
    """AutoTokenizer over a copy of a test tokenizer folder (the fast tokenizer.json is used)."""
    from transformers import AutoTokenizer
    folder = Path(tempfile.mkdtemp(prefix=f"tok_{name}_"))
    for f in (testdata / "tokenizers" / name).iterdir():
        if f.name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "spiece.model",
                      "vocab.json", "merges.txt"):
            shutil.copy(f, folder / f.name)
    tok = AutoTokenizer.from_pretrained(folder)
    if extra_special:
        tok.add_special_tokens({"additional_special_tokens": list(extra_special)})
    if chat_template:
        tok.chat_template = chat_template
    shutil.rmtree(folder)
    return tok


def _seeded(seed: int):
    torch.manual_seed(seed)


def _qwen_vl(vocab: int = 152064):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    config = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=D["text"], intermediate_size=2 * D["text"], num_hidden_layers=2,
                         num_attention_heads=D["text_heads"], num_key_value_heads=1, vocab_size=vocab,
                         rope_theta=1000000.0,
                         rope_scaling={"type": "mrope", "rope_type": "default", "mrope_section": D["mrope"]}),
        vision_config=dict(depth=2, hidden_size=D["text"], intermediate_size=2 * D["text"], num_heads=2,
                           out_hidden_size=D["text"], fullatt_block_indexes=[1], window_size=112, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
        vocab_size=vocab, hidden_size=D["text"], **QWEN_SPECIAL)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


def _qwen_processor(tokenizer):
    """Qwen2VLProcessor with the PIL image processor, the one the runtime ports (Pillow's bicubic,
    src/core/qwen_vl.cpp). transformers 5 picks the torchvision backend for `Qwen2VLImageProcessor` when
    torchvision is installed; its antialiased tensor resize is not bit-identical (docs/parity.md)."""
    from transformers import Qwen2VLProcessor, Qwen2VLVideoProcessor
    try:
        from transformers import Qwen2VLImageProcessorPil as ImageProcessor
    except ImportError:  # transformers 4: the slow class is the PIL one
        from transformers import Qwen2VLImageProcessor as ImageProcessor
    return Qwen2VLProcessor(image_processor=ImageProcessor(), tokenizer=tokenizer,
                            video_processor=Qwen2VLVideoProcessor())


def _random_stats(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    mean = (torch.randn(n, generator=g) * 0.2).tolist()
    std = (torch.rand(n, generator=g) + 0.5).tolist()
    return mean, std


def _autoencoder_kl(latent_channels: int, **extra):
    from diffusers import AutoencoderKL
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(D["vae"],) * 4,
                         layers_per_block=1, latent_channels=latent_channels, norm_num_groups=4,
                         use_quant_conv=False, use_post_quant_conv=False, **extra)


def qwen(testdata: Path, plus: bool = True):
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPipeline,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    _seeded(0)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=64, out_channels=16, num_layers=2,
                                              attention_head_dim=D["head"], num_attention_heads=D["heads"],
                                              joint_attention_dim=D["text"], axes_dims_rope=tuple(_axes(3)),
                                              zero_cond_t=plus)
    mean, std = _random_stats(16, 1)
    _seeded(2)
    vae = AutoencoderKLQwenImage(base_dim=D["qwen_vae"], z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                                 temperal_downsample=[False, True, True], latents_mean=mean, latents_std=std)
    _seeded(3)
    text_encoder = _qwen_vl()
    tokenizer = _tokenizer(testdata, "qwen2")
    cls = QwenImageEditPlusPipeline if plus else QwenImageEditPipeline
    return cls(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULERS["qwen"]), vae=vae, text_encoder=text_encoder,
               tokenizer=tokenizer, processor=_qwen_processor(tokenizer), transformer=transformer)


def longcat(testdata: Path):
    from diffusers import FlowMatchEulerDiscreteScheduler, LongCatImageEditPipeline, LongCatImageTransformer2DModel
    _seeded(0)
    transformer = LongCatImageTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                                 attention_head_dim=D["head"], num_attention_heads=D["heads"],
                                                 joint_attention_dim=D["text"], pooled_projection_dim=D["text"],
                                                 axes_dims_rope=_axes(3))
    _seeded(2)
    vae = _autoencoder_kl(16, scaling_factor=0.3611, shift_factor=0.1159)
    _seeded(3)
    text_encoder = _qwen_vl()
    tokenizer = _tokenizer(testdata, "qwen2")
    return LongCatImageEditPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULERS["flux"]), vae=vae,
                                    text_encoder=text_encoder, tokenizer=tokenizer,
                                    text_processor=_qwen_processor(tokenizer), transformer=transformer)


def _flux2_vae():
    from diffusers import AutoencoderKLFlux2
    _seeded(2)
    # sample_size sets only the tiling (enable_tiling): 256 px tiles, so the parity rows' VAE calls run tiled
    vae = AutoencoderKLFlux2(block_out_channels=(D["vae"],) * 4, layers_per_block=1, latent_channels=32,
                             norm_num_groups=4, sample_size=256)
    g = torch.Generator().manual_seed(5)
    vae.bn.running_mean.copy_(torch.randn(128, generator=g) * 0.3)
    vae.bn.running_var.copy_(torch.rand(128, generator=g) + 0.5)
    return vae


# The Mistral Small 3.x chat layout (bos, [SYSTEM_PROMPT]…[/SYSTEM_PROMPT], one [INST]…[/INST] per user turn with
# [IMG] for each image block) for FluxPipeline's system + user turns and upsample_prompt's system + images + text.
MISTRAL_TEMPLATE = ("{{ bos_token }}{% for m in messages %}{% if m['content'] is string %}{% set blocks = "
                    "[{'type': 'text', 'text': m['content']}] %}{% else %}{% set blocks = m['content'] %}{% endif %}"
                    "{% if m['role'] == 'system' %}[SYSTEM_PROMPT]{{ blocks[0]['text'] }}[/SYSTEM_PROMPT]"
                    "{% elif m['role'] == 'user' %}[INST]{% for b in blocks %}{% if b['type'] == 'text' %}"
                    "{{ b['text'] }}{% elif b['type'] in ['image', 'image_url'] %}[IMG]{% endif %}{% endfor %}[/INST]"
                    "{% elif m['role'] == 'assistant' %}{{ blocks[0]['text'] }}{{ eos_token }}{% endif %}{% endfor %}")
QWEN3_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% if enable_thinking is defined and "
                  "enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")


def flux2(testdata: Path, klein: bool):
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Pipeline, Flux2Transformer2DModel
    _seeded(0)
    transformer = Flux2Transformer2DModel(patch_size=1, in_channels=128, num_layers=1, num_single_layers=1,
                                          attention_head_dim=D["head"], num_attention_heads=D["heads"],
                                          joint_attention_dim=3 * D["text"], timestep_guidance_channels=256,
                                          axes_dims_rope=_axes(4),
                                          guidance_embeds=not klein)
    vae = _flux2_vae()
    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULERS["flux"])
    _seeded(3)
    if klein:
        from transformers import Qwen3Config, Qwen3ForCausalLM
        text_encoder = Qwen3ForCausalLM(Qwen3Config(hidden_size=D["text"], intermediate_size=2 * D["text"],
                                                    num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1,
                                                    head_dim=D["text"] // 2,
                                                    vocab_size=151936, max_position_embeddings=1024)).eval()
        tokenizer = _tokenizer(testdata, "qwen3", QWEN3_TEMPLATE)
        return Flux2KleinPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                  transformer=transformer, is_distilled=False)
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration, PixtralProcessor
    try:
        from transformers import PixtralImageProcessorPil as ImageProcessor
    except ImportError:  # transformers 4: the slow class is the PIL one
        from transformers import PixtralImageProcessor as ImageProcessor
    tokenizer = _tokenizer(testdata, "qwen2", MISTRAL_TEMPLATE,
                           extra_special=("<s>", "</s>", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", "[/INST]",
                                          "[IMG]", "[IMG_BREAK]", "[IMG_END]"))
    tokenizer.bos_token, tokenizer.eos_token = "<s>", "</s>"
    # Mistral Small 3.x's vision geometry: patch 14, 2x2 merge, 1540-pixel longest edge (110 patches a side);
    # the PIL image processor, the one the runtime ports (Pillow's bicubic), as for Qwen.
    processor = PixtralProcessor(image_processor=ImageProcessor(size={"longest_edge": 1540},
                                                                patch_size={"height": 14, "width": 14}),
                                 tokenizer=tokenizer, patch_size=14, spatial_merge_size=2,
                                 chat_template=MISTRAL_TEMPLATE)
    text_encoder = Mistral3ForConditionalGeneration(Mistral3Config(
        text_config=dict(model_type="mistral", hidden_size=D["text"], intermediate_size=2 * D["text"],
                         num_hidden_layers=4, num_attention_heads=2, num_key_value_heads=1, head_dim=D["text"] // 2,
                         vocab_size=len(tokenizer), max_position_embeddings=4096, sliding_window=None,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(model_type="pixtral", hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, head_dim=8, image_size=1540, patch_size=14),
        spatial_merge_size=2, image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"))).eval()
    text_encoder.generation_config.eos_token_id = tokenizer.eos_token_id
    return Flux2Pipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=processor,
                         transformer=transformer)


def flux1_kontext(testdata: Path):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxKontextPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel
    _seeded(0)
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                         attention_head_dim=D["head"], num_attention_heads=D["heads"],
                                         joint_attention_dim=D["text"], pooled_projection_dim=D["text"],
                                         guidance_embeds=True, axes_dims_rope=_axes(3))
    _seeded(2)
    vae = _autoencoder_kl(16, scaling_factor=0.3611, shift_factor=0.1159)
    _seeded(3)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=D["text"], intermediate_size=2 * D["text"],
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=77,
                                        projection_dim=D["text"],
                                        bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)).eval()
    t5 = T5EncoderModel(T5Config(vocab_size=32128, d_model=D["text"], d_kv=D["text"] // 2, d_ff=2 * D["text"],
                                 num_layers=1, num_heads=2,
                                 relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")).eval()
    return FluxKontextPipeline(scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULERS["flux"]), vae=vae,
                               text_encoder=clip, tokenizer=_tokenizer(testdata, "clip"), text_encoder_2=t5,
                               tokenizer_2=_tokenizer(testdata, "t5"), transformer=transformer)


# GLM-Image: K codebook codes and V = K + 16 vision ids (codes, image start K, image end K + 1, spares), as in the
# released layout (16384 + 128); the chat template has the image-block layout GlmImageModel.get_rope_index
# documents. The processor's tokenizer is the Qwen2 test vocabulary shifted past the vision ids.
GLM_CODES = 64
GLM_VISION = GLM_CODES + 16
GLM_TEMPLATE = ("{%- for message in messages -%}{%- if message['content'] is string -%}{{ message['content'] }}"
                "{%- else -%}{%- for item in message['content'] -%}{%- if item['type'] == 'image' -%}"
                f"<|dit_token_{GLM_CODES}|><|image|><|dit_token_{GLM_CODES + 1}|>"
                "{%- elif item['type'] == 'text' -%}{{ item['text'] }}{%- endif -%}{%- endfor -%}{%- endif -%}"
                "{%- endfor -%}")


def _glm_tokenizer(testdata: Path):
    """A fast tokenizer with GLM-Image's id layout: <|dit_token_i|> for the vision ids first, then the Qwen2 test
    vocabulary (shifted), then <sop>, <eop> and <|image|>; returns (tokenizer, vocabulary size)."""
    import json

    from transformers import PreTrainedTokenizerFast
    tok = json.loads((testdata / "tokenizers/qwen2/tokenizer.json").read_text())
    tok["model"]["vocab"] = {k: v + GLM_VISION for k, v in tok["model"]["vocab"].items()}
    shifted = [dict(a, id=a["id"] + GLM_VISION) for a in tok["added_tokens"]]
    nxt = max(a["id"] for a in shifted) + 1

    def special(i, content):
        return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True}
    tok["added_tokens"] = [special(i, f"<|dit_token_{i}|>") for i in range(GLM_VISION)] + shifted + [
        special(nxt, "<sop>"), special(nxt + 1, "<eop>"), special(nxt + 2, "<|image|>")]
    for a in tok["added_tokens"]:  # added tokens live in the vocabulary too, under their own ids
        tok["model"]["vocab"][a["content"]] = a["id"]
    folder = Path(tempfile.mkdtemp(prefix="tok_glm_"))
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    fast = PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"),
                                   bos_token=f"<|dit_token_{GLM_CODES}|>", eos_token=f"<|dit_token_{GLM_CODES + 1}|>",
                                   pad_token="<|endoftext|>",
                                   extra_special_tokens={"image_token": "<|image|>", "grid_bos_token": "<sop>",
                                                         "grid_eos_token": "<eop>"})
    shutil.rmtree(folder)
    return fast, nxt + 3


def glm_image(testdata: Path):
    """GlmImagePipeline with the real classes at small sizes: patch 16 / merge 1 / temporal 1 and 16 latent
    channels kept; the PIL image processor (the one the runtime ports) with 64^2..256^2 pixel limits."""
    from diffusers import FlowMatchEulerDiscreteScheduler, GlmImagePipeline, GlmImageTransformer2DModel
    from transformers import (
        ByT5Tokenizer,
        GenerationConfig,
        GlmImageConfig,
        GlmImageForConditionalGeneration,
        GlmImageProcessor,
        T5Config,
        T5EncoderModel,
    )
    from transformers.models.glm_image.image_processing_pil_glm_image import GlmImageImageProcessorPil
    tok, vocab = _glm_tokenizer(testdata)
    processor = GlmImageProcessor(
        image_processor=GlmImageImageProcessorPil(patch_size=16, temporal_patch_size=1, merge_size=1,
                                                  image_mean=[0.5] * 3, image_std=[0.5] * 3, min_pixels=64 * 64,
                                                  max_pixels=256 * 256),
        tokenizer=tok, chat_template=GLM_TEMPLATE)
    t = D["text"]
    _seeded(0)
    vle = GlmImageForConditionalGeneration(GlmImageConfig(
        text_config=dict(hidden_size=2 * t, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=4 * t, vocab_size=vocab, vision_vocab_size=GLM_VISION,
                         pad_token_id=tok.pad_token_id, eos_token_id=GLM_CODES + 1,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [t // 8, t // 16, t // 16], "partial_rotary_factor": 0.5}),
        vision_config=dict(hidden_size=2 * t, depth=2, num_heads=2, intermediate_size=4 * t, patch_size=16,
                           image_size=128),
        vq_config=dict(embed_dim=t, num_embeddings=GLM_CODES, latent_channels=2 * t),
        image_token_id=tok.convert_tokens_to_ids("<|image|>"), image_start_token_id=GLM_CODES,
        image_end_token_id=GLM_CODES + 1)).eval()
    with torch.no_grad():  # the head favours codebook codes, as a trained model's does: spare and special ids
        head = vle.lm_head.weight  # get no mass (top-p drops them), so every row samples a full grid of codes
        head[GLM_CODES:] = 0.0
        head[:GLM_CODES] *= 8.0
    vle.generation_config = GenerationConfig(do_sample=True, temperature=0.9, top_p=0.75, eos_token_id=GLM_CODES + 1,
                                             bos_token_id=GLM_CODES, pad_token_id=tok.pad_token_id)
    _seeded(1)
    t5 = T5EncoderModel(T5Config(vocab_size=384, d_model=2 * t, d_kv=t, d_ff=4 * t, num_layers=1, num_heads=2,
                                 relative_attention_num_buckets=8, feed_forward_proj="gated-gelu")).eval()
    _seeded(2)
    dit = GlmImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=16, num_layers=2,
                                     attention_head_dim=D["head"], num_attention_heads=D["heads"],
                                     text_embed_dim=2 * t, time_embed_dim=2 * t, condition_dim=t,
                                     prior_vq_quantizer_codebook_size=GLM_CODES)
    _seeded(3)
    vae = _autoencoder_kl(16, latents_mean=[0.1 * (i % 5) - 0.2 for i in range(16)],
                          latents_std=[0.8 + 0.05 * i for i in range(16)])
    return GlmImagePipeline(tokenizer=ByT5Tokenizer(), processor=processor, text_encoder=t5,
                            vision_language_encoder=vle, vae=vae, transformer=dit,
                            scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULERS["glm"]))


# One builder per implemented type of src/models/model_table.json (parity.py refuses to run when one is
# missing; tools/export/tests/test_recipes.py checks the keys are exactly the implemented types).
BUILDERS = {
    "qwen": lambda td: qwen(td, plus=True),
    "qwen_singleimg": lambda td: qwen(td, plus=False),
    "longcat": longcat,
    "flux2": lambda td: flux2(td, klein=False),
    "flux2_klein": lambda td: flux2(td, klein=True),
    "flux1_kontext": flux1_kontext,
    "glm_image": glm_image,
}


def missing_builders(types) -> list:
    """The types in `types` (model_table.json's implemented ones) without a builder here."""
    return [kind for kind in types if kind not in BUILDERS]


def builder(kind: str):
    if kind not in BUILDERS:
        raise KeyError(f"no tiny pipeline builder for model type {kind} (tools/parity/tiny_pipelines.py BUILDERS)")
    return BUILDERS[kind]


def build(kind: str, testdata: Path, size: str = "tiny"):
    """The pipeline of `kind` at `size` (SIZES)."""
    global D
    D = SIZES[size]
    try:
        return builder(kind)(testdata)
    finally:
        D = SIZES["tiny"]


def save(pipe, folder: Path) -> Path:
    """save_pretrained, as a hub snapshot would be laid out (what the exporter reads)."""
    pipe.save_pretrained(folder, safe_serialization=True)
    if not (folder / "model_index.json").is_file():
        raise RuntimeError(f"{folder}: save_pretrained wrote no model_index.json")
    return folder
