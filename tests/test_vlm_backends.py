"""The vlm grader and proposer end to end on a tiny random Idefics3 built here (nothing downloaded).

The model, its word-level tokenizer and its processor are built from configs, saved into a temp
dir and loaded back through the backends' loader (AutoProcessor + AutoModelForImageTextToText,
local_files_only). Its answers are random: tests steer them with a bias on the next-token logits.
"""

import logging
import math

import numpy as np
import pytest

from embodied.graders import make_grader
from embodied.proposers import SceneContext, make_proposer
from tiny_vlm import bias_next_token, build_tiny_idefics3
from embodied.vlm.backend import VLMNotFoundError, answer_token_ids, parse_yes_no
from embodied.proposers.vlm import split_proposals

FRAMES = np.random.default_rng(0).integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_idefics3(tmp_path_factory.mktemp("vlm") / "tiny-idefics3")


@pytest.fixture
def grader(model_dir):
    return make_grader({"name": "vlm", "model_path": str(model_dir)})


@pytest.fixture
def steer(grader):
    """steer(word) makes the tiny model answer ``word``; hooks come off after the test."""
    handles = []

    def apply(word):
        ids = grader.vlm.tokenizer.convert_tokens_to_ids([word])
        handles.append(bias_next_token(grader.vlm.model, ids))

    yield apply
    for h in handles:
        h.remove()


def test_prompt_has_the_question_and_one_image_slot_per_frame(grader):
    question = grader.question("open the drawer.")
    assert question == "Did the robot open the drawer? Answer yes or no."
    batch = grader.vlm.inputs([FRAMES[-1], FRAMES[-2]], question)
    text = grader.vlm.tokenizer.decode(batch["input_ids"][0])
    assert text.count("<fake_token_around_image>") == 4 and text.count("<image>") == 2 * 4  # 2 images x 4 tokens
    assert "did the robot open the drawer" in text and text.endswith("assistant :")
    assert tuple(batch["pixel_values"].shape[:2]) == (1, 2)


def test_score_is_the_yes_vs_no_softmax(grader):
    import torch

    result = grader.grade(FRAMES, "open the drawer")
    logits = grader.vlm.next_token_logits([FRAMES[-1]], grader.question("open the drawer"))
    yes, no = (logits[grader.vlm.tokenizer.convert_tokens_to_ids([w])[0]] for w in ("yes", "no"))
    assert result.score == pytest.approx(float(torch.sigmoid(yes - no)), abs=1e-5)
    assert result.success == (result.score >= 0.5) and "P(yes)=" in result.reason


def test_steered_answers_decide_success(grader, steer):
    steer("yes")
    assert grader.grade(FRAMES, "open the drawer").success
    assert grader.grade(FRAMES, "open the drawer").score > 0.99


def test_generate_decision_parses_the_answer(model_dir, caplog):
    grader = make_grader({"name": "vlm", "model_path": str(model_dir), "decision": "generate", "num_frames": 2})
    ids = grader.vlm.tokenizer.convert_tokens_to_ids(["no"])
    handle = bias_next_token(grader.vlm.model, ids)
    try:
        result = grader.grade(FRAMES, "open the door")
        assert not result.success and result.reason.startswith("answered 'no")
    finally:
        handle.remove()
    handle = bias_next_token(grader.vlm.model, grader.vlm.tokenizer.convert_tokens_to_ids(["drawer"]))
    try:
        with caplog.at_level(logging.WARNING, logger="embodied.graders.vlm"):
            result = grader.grade(FRAMES, "open the door")
        assert not result.success and "unparseable answer 'drawer" in result.reason
        assert "unparseable" in caplog.text
    finally:
        handle.remove()


def test_model_errors_count_as_failures_and_are_logged(grader, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(grader.vlm.model, "forward", broken)
    with caplog.at_level(logging.WARNING, logger="embodied.graders.vlm"):
        result = grader.grade(FRAMES, "open the drawer")
    assert not result.success and math.isnan(result.score) and "RuntimeError: out of memory" in result.reason
    assert "out of memory" in caplog.text
    with pytest.raises(ValueError, match="uint8"):  # bad input is the caller's error, not a grade
        grader.grade(FRAMES.astype(np.float32), "open the drawer")


def test_missing_model_says_how_to_point_the_config(tmp_path):
    with pytest.raises(VLMNotFoundError, match=r"grader.model_path=/path/to/SmolVLM"):
        make_grader({"name": "vlm", "model_path": str(tmp_path / "nowhere")})
    with pytest.raises(VLMNotFoundError, match="no model_path is set"):
        make_grader("vlm")
    with pytest.raises(VLMNotFoundError, match=r"proposer.model_path="):
        make_proposer({"name": "vlm", "model_path": None})


def test_yes_no_tokens_with_leading_space_variants(grader):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["yes no Yes No", "yes", "no", " yes", " no"] * 20,
                            trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe)
    yes = answer_token_ids(tok, "yes")
    assert {tok.convert_ids_to_tokens(i) for i in yes} >= {"yes", "Ġyes", "Yes", "ĠYes"}
    assert answer_token_ids(grader.vlm.tokenizer, "yes") == grader.vlm.tokenizer.convert_tokens_to_ids(["yes"])
    assert parse_yes_no("Yes, it did.") is True and parse_yes_no(" no") is False
    assert parse_yes_no("maybe") is None and parse_yes_no("") is None


def test_fallback_prompt_without_chat_template(tmp_path):
    path = build_tiny_idefics3(tmp_path / "plain", chat_template=False)
    grader = make_grader({"name": "vlm", "model_path": str(path)})
    assert grader.vlm.prompt("Q?", 1) == "User:<image>Q?<end_of_utterance>\nAssistant:"
    assert 0.0 <= grader.grade(FRAMES, "open the drawer").score <= 1.0


def test_vlm_proposer_keeps_feasible_instructions(model_dir, monkeypatch, caplog):
    proposer = make_proposer({"name": "vlm", "model_path": str(model_dir), "max_new_tokens": 6})
    scene = SceneContext(["drawer-open-v3", "drawer-close-v3"])
    real = proposer.propose(FRAMES[0], scene)  # the random model's own words: whatever survives is feasible
    assert set(real) <= set(scene.instructions())

    answer = "1. Open the drawer.\n2) fly to the moon\n- close the door; pull open the drawer\nopen the drawer"
    monkeypatch.setattr(proposer.vlm, "generate", lambda images, text, max_new_tokens: answer)
    with caplog.at_level(logging.INFO, logger="embodied.proposers.vlm"):
        kept = proposer.propose(FRAMES[0], scene)
    assert kept[0] == "open the drawer" and len(kept) == 2 and kept[1] in scene.instructions()
    assert {m.proposal for m in proposer.last_dropped} == {"fly to the moon", "close the door"}
    assert "door-close-v3 is not in this scene" in caplog.text and "fly to the moon" in caplog.text
    assert proposer.propose(FRAMES[0], SceneContext(scene.tasks, num=1)) == ["open the drawer"]

    def broken(images, text, max_new_tokens):
        raise RuntimeError("generation failed")

    monkeypatch.setattr(proposer.vlm, "generate", broken)
    with caplog.at_level(logging.WARNING, logger="embodied.proposers.vlm"):
        assert proposer.propose(FRAMES[0], scene) == []
    assert "generation failed" in caplog.text


def test_split_proposals():
    assert split_proposals("1. a b.\n\n* c; 2) d\n- a b") == ["a b", "c", "d"]
