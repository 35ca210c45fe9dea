"""A local image-text-to-text model (Idefics3 / SmolVLM class) behind three calls the backends need.

    vlm = VLM("/models/SmolVLM-256M-Instruct")          # local directory only, never downloaded
    p_yes = vlm.yes_probability([frame], "Did the robot open the drawer? Answer yes or no.")
    text = vlm.generate([frame], "List tasks ...", max_new_tokens=48)

Loaded with ``AutoProcessor`` + ``AutoModelForImageTextToText`` (``AutoModelForVision2Seq`` for
models only registered there), ``local_files_only=True``. The prompt is the processor's chat
template with one image slot per frame; a processor without a template gets Idefics3's plain
"User:<image>...<end_of_utterance>\\nAssistant:" form.
"""

from __future__ import annotations

import logging
import math
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DTYPES = ("float32", "bfloat16", "float16")


class VLMNotFoundError(FileNotFoundError):
    """The configured model directory is missing or incomplete."""


def missing_model_error(model_path: str | None, key: str) -> VLMNotFoundError:
    where = "no model_path is set" if not model_path else f"{model_path} is not a model directory (no config.json)"
    return VLMNotFoundError(
        f"VLM backend: {where}. Nothing is downloaded at run time: put an image-text-to-text model "
        f"(e.g. SmolVLM-256M-Instruct: config.json, model.safetensors, processor and tokenizer files) in a "
        f"local directory and point the config at it: {key}.model_path=/path/to/SmolVLM-256M-Instruct")


@lru_cache(maxsize=2)
def _load(model_path: str, device: str, dtype: str):
    """(processor, model), once per process and setting (grader and proposer share one model)."""
    import torch
    import transformers
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(model_path, local_files_only=True)
    kwargs = dict(local_files_only=True, dtype=getattr(torch, dtype))
    try:
        model = transformers.AutoModelForImageTextToText.from_pretrained(model_path, **kwargs)
    except ValueError:  # architectures only registered as vision-to-sequence
        model = transformers.AutoModelForVision2Seq.from_pretrained(model_path, **kwargs)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return processor, model.to(device).eval()


def answer_token_ids(tokenizer, word: str) -> list[int]:
    """Ids of the single tokens that spell ``word`` as an answer: "yes", " yes", "Yes", " Yes", "YES"...

    Byte-level BPE tokenizers write a leading space as "Ġ", SentencePiece as "▁": the variants
    are found by encoding each spelling (and by looking the marked forms up in the vocabulary).
    """
    ids: list[int] = []
    spellings = {word, word.capitalize(), word.upper()}
    for text in sorted(spellings) + [" " + s for s in sorted(spellings)]:
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(int(encoded[0]))
    vocab = tokenizer.get_vocab()
    for marker in ("Ġ", "▁"):
        ids += [vocab[marker + s] for s in sorted(spellings) if marker + s in vocab]
    unk = getattr(tokenizer, "unk_token_id", None)
    return sorted({i for i in ids if i != unk})


def parse_yes_no(text: str) -> bool | None:
    """True / False from an answer that starts with yes / no (any case, punctuation); None otherwise."""
    words = re.findall(r"[a-z]+", text.lower())
    if not words:
        return None
    return {"yes": True, "y": True, "true": True, "no": False, "n": False, "false": False}.get(words[0])


class VLM:
    """Prompting, next-token yes/no scoring and greedy generation over one local model."""

    def __init__(self, model_path: str | None, device: str = "cpu", dtype: str = "float32",
                 config_key: str = "grader") -> None:
        if not model_path or not (Path(model_path) / "config.json").is_file():
            raise missing_model_error(model_path, config_key)
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        self.model_path = str(Path(model_path).resolve())
        self.processor, self.model = _load(self.model_path, device, dtype)
        self.tokenizer = self.processor.tokenizer
        self.yes_ids = answer_token_ids(self.tokenizer, "yes")
        self.no_ids = answer_token_ids(self.tokenizer, "no")

    def prompt(self, text: str, num_images: int) -> str:
        """The model's chat prompt: one user turn with ``num_images`` image slots then ``text``."""
        if getattr(self.processor, "chat_template", None):
            content = [{"type": "image"} for _ in range(num_images)] + [{"type": "text", "text": text}]
            messages = [{"role": "user", "content": content}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True)
        return "User:" + "<image>" * num_images + f"{text}<end_of_utterance>\nAssistant:"

    def inputs(self, images: list[np.ndarray], text: str):
        """Processor outputs on the model's device for ``images`` (uint8 (H, W, 3) each) and ``text``."""
        from PIL import Image

        prompt = self.prompt(text, len(images))
        batch = self.processor(text=[prompt], images=[[Image.fromarray(np.asarray(im)) for im in images]],
                               return_tensors="pt")
        batch.pop("token_type_ids", None)  # tokenizers that emit them; generate() refuses them
        return batch.to(self.model.device)

    def next_token_logits(self, images: list[np.ndarray], text: str):
        import torch

        with torch.no_grad():
            return self.model(**self.inputs(images, text)).logits[0, -1].float()

    def yes_probability(self, images: list[np.ndarray], text: str) -> float:
        """P(yes) = softmax over the next-token logits of the yes vs the no tokens (all spellings)."""
        import torch

        if not self.yes_ids or not self.no_ids:
            raise ValueError(f"the tokenizer of {self.model_path} has no single token for 'yes' or 'no': "
                             "use grader.decision=generate")
        logits = self.next_token_logits(images, text)
        yes, no = torch.logsumexp(logits[self.yes_ids], 0), torch.logsumexp(logits[self.no_ids], 0)
        p = float(torch.sigmoid(yes - no))
        if not math.isfinite(p):
            raise FloatingPointError(f"P(yes) is {p}: the model's logits are not finite")
        return p

    def generate(self, images: list[np.ndarray], text: str, max_new_tokens: int) -> str:
        """The greedy answer, decoded without special tokens."""
        import torch

        batch = self.inputs(images, text)
        with torch.no_grad():
            out = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True).strip()
