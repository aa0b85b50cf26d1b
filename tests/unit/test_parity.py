"""Our Flax models compute what transformers computes (float32, tiny random models)."""

import numpy as np
import pytest
import torch
import transformers as tf

import hf_models as H
from mathvlm import checkpoint, hf

TOL = 1e-4  # max |ours - ref| / max |ref|


def test_clip_vision_hidden_states_every_layer(tmp_path):
  ref_model = H._randomise(tf.CLIPVisionModel(H.clip_vision_config()), 1)
  model, cfg = hf.load_hf(H.save(ref_model, str(tmp_path)))
  px = H.pixels(3, seed=1)
  with torch.no_grad():
    ref = ref_model(pixel_values=H.to_torch_pixels(px), output_hidden_states=True)
  ours = np.asarray(model.all_hidden_states(px))
  assert ours.shape[0] == cfg.num_layers + 1 == len(ref.hidden_states)
  for i, h in enumerate(ref.hidden_states):
    assert H.rel_err(ours[i], h.numpy()) < TOL, f"hidden state {i}"
    # LLaVA's selection runs only the layers it needs; same numbers as the full stack.
    assert H.rel_err(model.hidden_state(px, i - len(ref.hidden_states)), h.numpy()) < TOL
  last, pooled = model(px)
  assert H.rel_err(last, ref.last_hidden_state.numpy()) < TOL
  assert H.rel_err(pooled, ref.pooler_output.numpy()) < TOL


@pytest.mark.parametrize("eos", [99, 2])  # 2: configs saved before transformers#24773 pool at argmax
def test_clip_text_image_embeddings_and_logits(tmp_path, eos):
  ref_model = H.clip(2, eos_token_id=eos)
  model, _ = hf.load_hf(H.save(ref_model, str(tmp_path)))
  rs = np.random.RandomState(0)
  ids = rs.randint(3, 90, (3, 9))
  mask = np.ones_like(ids)
  ids[0, 5], ids[0, 6:], mask[0, 6:] = 99, 0, 0   # right padded after EOS
  ids[1, 8] = ids[2, 3] = 99
  px = H.pixels(2, seed=3)
  with torch.no_grad():
    ref = ref_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    pixel_values=H.to_torch_pixels(px))
  out = model(px, ids, mask)
  assert H.rel_err(out["logits_per_image"], ref.logits_per_image.numpy()) < TOL
  assert H.rel_err(out["logits_per_text"], ref.logits_per_text.numpy()) < TOL
  assert H.rel_err(out["text_embeds"], ref.text_embeds.numpy()) < TOL
  assert H.rel_err(out["image_embeds"], ref.image_embeds.numpy()) < TOL


LLM_CASES = {
    "llama_gqa_untied": H.llama_config(),
    "llama_mha_tied": H.llama_config(num_key_value_heads=4, tie_word_embeddings=True),
    "llama3_rope_bias": H.llama_config(
        attention_bias=True, mlp_bias=True, rope_parameters=dict(
            rope_theta=500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
            high_freq_factor=4.0, original_max_position_embeddings=8)),
    "mistral_window_mqa": H.mistral_config(),
    "mistral_no_window_tied": H.mistral_config(sliding_window=None, num_key_value_heads=2,
                                               tie_word_embeddings=True),
}


@pytest.mark.parametrize("case", sorted(LLM_CASES))
def test_causal_lm_logits_with_padding(tmp_path, case):
  ref_model = H.llm(3, LLM_CASES[case])
  model, cfg = hf.load_hf(H.save(ref_model, str(tmp_path)))
  assert cfg.tie_word_embeddings == LLM_CASES[case].tie_word_embeddings
  rs = np.random.RandomState(1)
  ids = rs.randint(3, H.VOCAB, (3, 13))
  mask = np.ones_like(ids)
  mask[1, :4] = 0    # left padding
  mask[2, 9:] = 0    # right padding
  with torch.no_grad():
    ref = ref_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
  ours = np.asarray(model(ids, mask))
  valid = mask.astype(bool)
  assert H.rel_err(ours, ref, valid) < TOL
  # Left padding with positions that skip the pads, as generation uses them.
  pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
  with torch.no_grad():
    ref = ref_model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                    position_ids=torch.tensor(pos)).logits.numpy()
  assert H.rel_err(model(ids, mask, pos), ref, valid) < TOL


def test_llava_logits_with_image_tokens(llava_hf):
  ref_model, path = llava_hf
  model, cfg = hf.load_llava(path)
  assert cfg.image_seq_len == 4 and cfg.vision_feature_layer == -2
  ids, mask = H.llava_prompt(2, 12, cfg.image_seq_len, pad_left=(0, 3))
  px = H.pixels(2)
  with torch.no_grad():
    ref = ref_model(input_ids=torch.tensor(ids), pixel_values=H.to_torch_pixels(px),
                    attention_mask=torch.tensor(mask)).logits.numpy()
  assert H.rel_err(model(ids, px, mask), ref, mask.astype(bool)) < TOL


def test_llava_several_images_per_sequence_and_text_only_rows(tmp_path):
  ref_model = H.llava(4, vision_feature_select_strategy="full", vision_feature_layer=-3)
  model, cfg = hf.load_llava(H.save(ref_model, str(tmp_path)))
  assert cfg.vision_feature_select == "cls_patch" and cfg.image_seq_len == 5
  rs = np.random.RandomState(5)
  ids = rs.randint(3, H.IMAGE_TOKEN, (3, 16))
  ids[0, 1:6] = ids[0, 9:14] = H.IMAGE_TOKEN     # two images in row 0
  ids[2, 4:9] = H.IMAGE_TOKEN                    # row 1 has none; row 2 one
  px = H.pixels(3, seed=6)
  with torch.no_grad():
    ref = ref_model(input_ids=torch.tensor(ids), pixel_values=H.to_torch_pixels(px)).logits
  assert H.rel_err(model(ids, px), ref.numpy()) < TOL


def test_llava_image_token_count_mismatch_is_a_clear_error(llava_hf):
  model, cfg = hf.load_llava(llava_hf[1])
  ids, _ = H.llava_prompt(2, 12, cfg.image_seq_len)
  with pytest.raises(ValueError, match="8 image tokens .* 3 image"):
    model(ids, H.pixels(3))


def test_bfloat16_compute_with_float32_params_stays_close(llava_hf):
  ref_model, path = llava_hf
  model, _ = hf.load_llava(path, "float32", compute_dtype="bfloat16")
  params = [v for _, v in hf.param_paths(model)]
  assert all(v[...].dtype == np.float32 for v in params)
  ids, mask = H.llava_prompt(2, 12, 4)
  px = H.pixels(2)
  with torch.no_grad():
    ref = ref_model(input_ids=torch.tensor(ids), pixel_values=H.to_torch_pixels(px)).logits.numpy()
  out = model(ids, px)
  assert out.dtype == np.float32          # logits are returned in float32
  assert 1e-4 < H.rel_err(out, ref) < 5e-2  # bf16 matmuls really ran, and stayed close


def test_per_row_image_slots_match_the_global_order_and_skip_text_only_rows(llava_hf):
  model, cfg = hf.load_llava(llava_hf[1])
  ids, mask = H.llava_prompt(3, 12, cfg.image_seq_len, seed=11)
  px = H.pixels(3, seed=11)
  np.testing.assert_array_equal(np.asarray(model(ids, px[:, None])), np.asarray(model(ids, px)))
  text_only = ids.copy()
  text_only[1, 1:1 + cfg.image_seq_len] = 7  # row 1 has no image tokens: its slot goes unused
  both = np.asarray(model(text_only, px[:, None]))
  alone = np.asarray(model(text_only[1:2]))
  np.testing.assert_allclose(both[1], alone[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(both[2], np.asarray(model(ids, px))[2])
