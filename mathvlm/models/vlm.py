"""LLaVA: CLIP features at one hidden layer -> projector -> spliced into the token embeddings.

The prompt carries one image token per visual feature (576 for ViT-L/14-336 with `patch`), as
llava-hf's processor writes it; the k-th run of image tokens in the batch (row-major) receives the
k-th image's features, so a sequence may hold several images, or none.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mathvlm.models.layers import check_field_types, hf_fields_of, with_hf_fields
from mathvlm.models.llm import LlamaConfig, LlamaForCausalLM, LMOutput
from mathvlm.models.projector import Projector, projector_depth
from mathvlm.models.vit import CLIPVisionConfig, CLIPVisionTransformer
from mathvlm.sharding import constrain

Array = jax.Array

# The original LLaVA code marks the image with this id; it never indexes the embedding table.
ORIGINAL_IMAGE_TOKEN_INDEX = -200
FEATURE_SELECT = {"patch": "patch", "default": "patch", "cls_patch": "cls_patch",
                  "full": "cls_patch"}


# Original-layout config fields whose other values make another model than this one reads (LLaVA-
# NeXT's tiling is refused with the image fields, `hf.config_from_hf`):
# the value LLaVA-1.5 (and Math-LLaVA) trained with, and what the other one would need.
ORIGINAL_PLAIN = {"mm_use_im_start_end": False, "mm_use_im_patch_token": False}
ORIGINAL_WHY = {
    "mm_use_im_start_end": "that model wraps each image in <im_start>/<im_end> tokens, which "
                           "this one never adds, so its prompts would differ from training",
    "mm_use_im_patch_token": "that model's vocabulary has an <im_patch> token this one never adds"}


# What LlavaConfig.to_hf writes (llava-hf's top level): a source's other fields are carried.
LLAVA_HF_FIELDS = ("model_type", "architectures", "vision_config", "text_config", "image_token_id",
                   "image_token_index", "projector_hidden_act", "multimodal_projector_bias",
                   "vision_feature_layer", "vision_feature_select_strategy", "image_seq_length",
                   "tie_word_embeddings")
# The original layout's LLaVA fields (LLaVA's train.py and initialize_vision_modules set them on
# the language model's config) that an export derives from the model (`hf.original_config`); its
# others (image_aspect_ratio, tokenizer_model_max_length, mm_projector_lr...) are carried.
ORIGINAL_MODELLED = ("mm_vision_tower", "mm_hidden_size", "mm_projector_type",
                     "mm_vision_select_layer", "mm_vision_select_feature", "mm_patch_merge_type",
                     "mm_use_im_start_end", "mm_use_im_patch_token", "use_mm_proj",
                     "tune_mm_mlp_adapter", "freeze_mm_mlp_adapter", "unfreeze_mm_vision_tower")
_ORIGINAL_OTHER = ("image_aspect_ratio", "image_grid_pinpoints", "tokenizer_padding_side",
                   "tokenizer_model_max_length")


def is_original_llava_field(name: str) -> bool:
  """A LLaVA field of an original-layout config.json, not one of its language model's."""
  return "mm_" in name or name in _ORIGINAL_OTHER


@dataclasses.dataclass(frozen=True)
class LlavaConfig:
  vision: CLIPVisionConfig = CLIPVisionConfig()
  text: LlamaConfig = LlamaConfig()
  projector: str = "mlp2x_gelu"
  projector_bias: bool = True
  image_token_id: int = 32000
  vision_feature_layer: int = -2
  vision_feature_select: str = "patch"   # 'patch' drops CLS, 'cls_patch' keeps it
  # config.json's fields this config does not model, written back on export (layers.hf_fields_of)
  hf_fields: tuple[tuple[str, str], ...] = ()

  def __post_init__(self):
    check_field_types(self)
    projector_depth(self.projector)
    if self.vision_feature_select not in ("patch", "cls_patch"):
      raise ValueError(f"vision_feature_select={self.vision_feature_select!r}; "
                       "expected 'patch' or 'cls_patch'")
    n = self.vision.num_layers
    if not -(n + 1) <= self.vision_feature_layer <= n:  # else it loads, and fails at the forward
      raise ValueError(f"vision_feature_layer={self.vision_feature_layer} is out of range for a "
                       f"{n}-layer vision tower (0..{n} or -1..-{n + 1}, its hidden states): "
                       "config.json's vision_feature_layer (mm_vision_select_layer in the "
                       "original LLaVA layout) must name one of them")

  @property
  def image_seq_len(self) -> int:
    return self.vision.num_patches + (self.vision_feature_select == "cls_patch")

  @classmethod
  def from_hf(cls, d: dict[str, Any], **overrides) -> "LlavaConfig":
    """From a llava-hf `config.json` (LlavaForConditionalGeneration)."""
    act = d.get("projector_hidden_act", "gelu")
    if act != "gelu":
      raise ValueError(f"config.json field projector_hidden_act={act!r} is not supported "
                       "(llava-hf projectors use 'gelu')")
    layer = d.get("vision_feature_layer", -2)
    if not isinstance(layer, int):
      raise ValueError(f"config.json field vision_feature_layer={layer!r}: only a single layer "
                       "is supported")
    strategy = d.get("vision_feature_select_strategy", "default")
    if strategy not in FEATURE_SELECT:
      raise ValueError(f"config.json field vision_feature_select_strategy={strategy!r}; "
                       "expected 'default' or 'full'")
    vision = d.get("vision_config") or {}
    if vision.get("model_type", "clip_vision_model") != "clip_vision_model":
      raise ValueError(f"config.json field vision_config.model_type="
                       f"{vision.get('model_type')!r}: only CLIP vision towers are supported")
    return cls(vision=CLIPVisionConfig.from_hf(vision, **overrides),
               hf_fields=hf_fields_of(d, LLAVA_HF_FIELDS),
               text=LlamaConfig.from_hf(d.get("text_config") or {"model_type": "llama"},
                                        **overrides),
               projector="mlp2x_gelu", projector_bias=d.get("multimodal_projector_bias", True),
               image_token_id=d.get("image_token_id", d.get("image_token_index", 32000)),
               vision_feature_layer=layer, vision_feature_select=FEATURE_SELECT[strategy])

  @classmethod
  def from_original(cls, d: dict[str, Any], clip: dict[str, Any], **overrides) -> "LlavaConfig":
    """From the original LLaVA layout (Math-LLaVA's release) plus the separate CLIP config."""
    own = {k: v for k, v in d.items() if is_original_llava_field(k)}
    text = {k: v for k, v in d.items() if k not in own}
    text["model_type"] = "mistral" if "mistral" in d.get("model_type", "") else "llama"
    select = d.get("mm_vision_select_feature", "patch")
    for field, plain in ORIGINAL_PLAIN.items():  # else another model loads, without a word
      if d.get(field, plain) not in (plain, None):
        raise ValueError(f"config.json field {field}={d[field]!r}: only {plain!r} is supported "
                         f"(LLaVA-1.5's and Math-LLaVA's); {ORIGINAL_WHY[field]}")
    if select not in FEATURE_SELECT:
      raise ValueError(f"config.json field mm_vision_select_feature={select!r}; "
                       "expected 'patch' or 'cls_patch'")
    vision = clip.get("vision_config", clip) if clip.get("model_type") == "clip" else clip
    return cls(vision=CLIPVisionConfig.from_hf(vision, **overrides),
               text=LlamaConfig.from_hf(text, **overrides),
               projector=d.get("mm_projector_type", "linear"), projector_bias=True,
               image_token_id=ORIGINAL_IMAGE_TOKEN_INDEX,
               vision_feature_layer=d.get("mm_vision_select_layer", -2),
               vision_feature_select=FEATURE_SELECT[select],
               hf_fields=hf_fields_of(own, ORIGINAL_MODELLED))

  def to_hf(self) -> dict[str, Any]:
    if self.projector != "mlp2x_gelu":
      raise ValueError(f"llava-hf has no {self.projector!r} projector (only mlp2x_gelu)")
    if not 0 <= self.image_token_id < self.text.vocab_size:
      raise ValueError(f"image_token_id={self.image_token_id} is outside the vocabulary "
                       f"(size {self.text.vocab_size}); llava-hf needs an image token in the "
                       "vocabulary: add one to the tokenizer and embedding first")
    out = dict(model_type="llava", architectures=["LlavaForConditionalGeneration"],
               vision_config=self.vision.to_hf(), text_config=self.text.to_hf(),
               image_token_id=self.image_token_id, projector_hidden_act="gelu",
               image_token_index=self.image_token_id,  # its name in transformers < 5's config
               multimodal_projector_bias=self.projector_bias,
               vision_feature_layer=self.vision_feature_layer,
               vision_feature_select_strategy="default" if self.vision_feature_select == "patch"
               else "full",
               image_seq_length=self.image_seq_len,
               tie_word_embeddings=self.text.tie_word_embeddings)
    return with_hf_fields(out, self.hf_fields)


class Llava(nnx.Module):
  def __init__(self, cfg: LlavaConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.vision_tower = CLIPVisionTransformer(cfg.vision, rngs=rngs)
    self.multi_modal_projector = Projector(cfg.projector, cfg.vision.hidden_size,
                                           cfg.text.hidden_size, cfg.text,
                                           bias=cfg.projector_bias, rngs=rngs)
    self.language_model = LlamaForCausalLM(cfg.text, rngs=rngs)

  def image_features(self, pixel_values: Array) -> Array:
    """[images, image_seq_len, text hidden]."""
    h = self.vision_tower.hidden_state(pixel_values, self.cfg.vision_feature_layer)
    if self.cfg.vision_feature_select == "patch":
      h = h[:, 1:]
    return self.multi_modal_projector(h)

  def embed(self, input_ids: Array, pixel_values: Array | None = None) -> Array:
    """Token embeddings with image features spliced in.

    pixel_values [images, H, W, 3]: the k-th run of image tokens in the batch (row-major) takes
    the k-th image, as llava-hf does. [batch, slots, H, W, 3]: each row's runs take that row's
    slots in order; a row with fewer runs (a text-only example) leaves its slots unused, so
    training batches can mix image and text-only examples with static shapes.
    """
    input_ids = jnp.asarray(input_ids, jnp.int32)
    is_image = input_ids == self.cfg.image_token_id
    x = self.language_model.embed(jnp.where(is_image, 0, input_ids))
    if pixel_values is None:
      return x
    pixel_values = jnp.asarray(pixel_values)
    if pixel_values.ndim == 5:
      b, slots = pixel_values.shape[:2]
      feats = self.image_features(pixel_values.reshape((b * slots,) + pixel_values.shape[2:]))
      feats = feats.reshape(b, slots * feats.shape[1], -1).astype(x.dtype)
      order = jnp.clip(jnp.cumsum(is_image, axis=1) - 1, 0, feats.shape[1] - 1)
      spliced = jnp.take_along_axis(feats, order[..., None], axis=1)
      return jnp.where(is_image[..., None], spliced, x)
    if not isinstance(is_image, jax.core.Tracer):
      self.check_image_tokens(input_ids, pixel_values)
    feats = self.image_features(pixel_values)
    n_feats = feats.shape[0] * feats.shape[1]
    flat = feats.reshape(n_feats, -1).astype(x.dtype)
    order = jnp.cumsum(is_image.reshape(-1)) - 1
    spliced = flat[jnp.clip(order, 0, n_feats - 1)].reshape(x.shape)
    return jnp.where(is_image[..., None], spliced, x)

  def check_image_tokens(self, input_ids, pixel_values) -> None:
    """With images in llava-hf's global order ([images, H, W, 3]), the prompts must hold exactly
    image_seq_len image tokens per image. Runs on concrete arrays (under jit it cannot raise)."""
    if np.ndim(pixel_values) != 4:
      return
    n_tokens = int(np.sum(np.asarray(input_ids) == self.cfg.image_token_id))
    n_images, per = pixel_values.shape[0], self.cfg.image_seq_len
    if n_tokens != n_images * per:
      raise ValueError(
          f"the prompt has {n_tokens} image tokens (id {self.cfg.image_token_id}) but "
          f"{n_images} image(s) give {n_images * per} features ({per} each): put "
          f"{per} image tokens per image in input_ids")

  def init_cache(self, batch: int, max_len: int, dtype=None) -> dict[str, Array]:
    return self.language_model.init_cache(batch, max_len, dtype)

  def for_decoding(self, unstack: bool | None = None) -> Llava:
    """This model for a decode loop (`LlamaForCausalLM.for_decoding`); the model is unchanged."""
    text = self.language_model.for_decoding(unstack)
    if text is self.language_model:
      return self
    view = nnx.merge(*nnx.split(self))
    view.language_model = text
    return view

  def head(self, x: Array) -> Array:
    return self.language_model.head(x)

  def head_operands(self, x: Array) -> tuple[Array, Array] | None:
    return self.language_model.head_operands(x)

  def apply(self, input_ids: Array, pixel_values: Array | None = None, **kwargs) -> LMOutput:
    """As `LlamaForCausalLM.apply`, with images spliced in first."""
    x = constrain(self.embed(input_ids, pixel_values), "activation_batch", "activation_length",
                  "activation_embed")
    return self.language_model.apply(inputs_embeds=x, **kwargs)

  def __call__(self, input_ids: Array, pixel_values: Array | None = None,
               attention_mask: Array | None = None) -> Array:
    """Logits [batch, seq, vocab]; pixel_values normalised, channels last [images, H, W, 3]
    (or [batch, slots, H, W, 3], see `embed`)."""
    return self.apply(input_ids, pixel_values, attention_mask=attention_mask).logits
