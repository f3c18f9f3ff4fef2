"""Stand-ins for the transformers classes FLUX.1-Kontext and FLUX.2-klein exports load (CLIP pooled at the
first EOS, T5 returning a tuple, a Qwen3 causal LM with hidden states), with upstream's call interfaces."""
from types import SimpleNamespace

import torch
from torch import nn

from common import DecoderStack, Loadable, config

__version__ = "4.57.0"


class CLIPTextModel(Loadable):
    def __init__(self):
        super().__init__()
        self.config = config(vocab_size=49408, eos_token_id=49407)
        self.emb, self.mix = nn.Embedding(49408, 16), nn.Linear(16, 16)

    def forward(self, input_ids, output_hidden_states=False):
        h = torch.tanh(self.mix(self.emb(input_ids)).cumsum(1) * 0.1)
        first_eos = (input_ids == self.config.eos_token_id).int().argmax(-1)
        pooled = h[torch.arange(h.shape[0], device=h.device), first_eos]
        return SimpleNamespace(pooler_output=pooled, last_hidden_state=h)


class T5EncoderModel(Loadable):
    def __init__(self):
        super().__init__()
        self.config = config(vocab_size=32128)
        self.emb, self.mix = nn.Embedding(32128, 32), nn.Linear(32, 32)

    def forward(self, input_ids, output_hidden_states=False):
        h = self.emb(input_ids)
        return (torch.tanh(self.mix(h) + h.mean(1, keepdim=True)),)


class Qwen3ForCausalLM(Loadable):
    def __init__(self):
        super().__init__()
        self.model = DecoderStack(n=4, d=8, vocab=151936)
        self.config = self.model.config

    def forward(self, input_ids=None, attention_mask=None, output_hidden_states=False, use_cache=False):
        return SimpleNamespace(hidden_states=self.model.hidden_states(input_ids, attention_mask))


from .qwen_vl import Qwen2_5_VLForConditionalGeneration  # noqa: E402,F401


class Mistral3ForConditionalGeneration(Loadable):
    """FLUX.2-dev's text encoder: the decoder stack sits at model.language_model."""

    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.language_model = DecoderStack(n=4, d=8, vocab=151936)
        self.config = config(text_config=self.model.language_model.config)

    def forward(self, input_ids=None, attention_mask=None, output_hidden_states=False, use_cache=False):
        return SimpleNamespace(hidden_states=self.model.language_model.hidden_states(input_ids, attention_mask))
