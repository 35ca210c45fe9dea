"""A tiny random Idefics3 model saved to a directory: the VLM backends' end-to-end test fixture.

Everything is built here, offline: a word-level tokenizer trained on a few sentences (with the
special tokens Idefics3's processor needs), an ``Idefics3ImageProcessor`` without image
splitting, an ``Idefics3Processor`` with a chat template, and an ``Idefics3ForConditionalGeneration``
with a one-layer vision tower and a one-layer Llama text model (~20 k parameters, instant on CPU).
Its answers are random; tests steer them with ``bias_next_token``.
"""

from __future__ import annotations

from pathlib import Path

from sim.catalog import TASKS, instructions

SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]
IMAGE_TOKENS = ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] | capitalize }}:{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def build_tiny_idefics3(path: str | Path, image_size: int = 32, seed: int = 0, chat_template: bool = True) -> Path:
    """Write processor + tokenizer + random model into ``path``; returns it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor,
                              Idefics3Processor, PreTrainedTokenizerFast)

    path = Path(path)
    # Tokenizer: whole words, trained on the prompts and every catalog instruction.
    corpus = ["User: Assistant: Did the robot do it ? Answer yes or no .",
              "List tasks the robot could do in this scene , one short instruction per line .",
              *(text for task in TASKS for text in instructions(task))]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIAL + IMAGE_TOKENS))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", additional_special_tokens=IMAGE_TOKENS)
    # Images: one image_size tile each (no splitting) -> (image_size / 8)^2 / 2^2 image tokens.
    images = Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": image_size},
                                    max_image_size={"longest_edge": image_size})
    image_seq_len = (image_size // 8) ** 2 // 4
    processor = Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=image_seq_len,
                                  chat_template=CHAT_TEMPLATE if chat_template else None)
    config = Idefics3Config(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=image_size, patch_size=8),
        text_config=dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        scale_factor=2, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def bias_next_token(model, token_ids: list[int], amount: float = 50.0):
    """Add ``amount`` to these tokens' logits at every position (a forward hook); returns the hook handle."""
    import torch

    def hook(module, inputs, output):
        bias = torch.zeros(output.shape[-1], dtype=output.dtype, device=output.device)
        bias[token_ids] = amount
        return output + bias

    return model.lm_head.register_forward_hook(hook)
