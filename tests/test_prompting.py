import copy
import math

import pytest
import torch
import torch.nn.functional as F

from clipbook import prompting

CLASSNAMES = ["circle", "hour_glass", "red square"]  # one name of two words, one with an underscore


@pytest.fixture(scope="module")
def tiny(random_tiny_clip):
    """A private copy: PromptLearner freezes the model it is given."""
    return copy.deepcopy(random_tiny_clip)


def _encode(loaded, sentences):
    with torch.no_grad():
        return loaded.model.encode_text(loaded.tokenizer(sentences))


@pytest.mark.parametrize("position, sentence", [("end", "a photo of a {}."), ("middle", "a photo {} of a."),
                                                ("front", "{} a photo of a.")])
@pytest.mark.parametrize("class_specific", [False, True])
def test_words_as_context_reproduce_encode_text(tiny, position, sentence, class_specific):
    """The key CoOp identity: context = embeddings of "a photo of a" gives open_clip's own text features."""
    learner = prompting.PromptLearner(tiny, CLASSNAMES, ctx_init="a photo of a", class_specific=class_specific,
                                      class_token_position=position)
    with torch.no_grad():
        ours = learner()
    names = [c.replace("_", " ") for c in CLASSNAMES]
    torch.testing.assert_close(ours, _encode(tiny, [sentence.format(c) for c in names]), rtol=1e-4, atol=1e-5)
    assert learner.n_ctx == 4


def test_trimming_after_the_last_eot_changes_nothing(tiny):
    learner = prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        embeddings = learner.prompt_embeddings()
        full = prompting.encode_token_embeddings(tiny.model, embeddings, learner.eot_index, trim=False)
        trimmed = prompting.encode_token_embeddings(tiny.model, embeddings, learner.eot_index, trim=True)
    torch.testing.assert_close(trimmed, full, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("position", prompting.CLASS_TOKEN_POSITIONS)
@pytest.mark.parametrize("class_specific", [False, True])
def test_shapes_and_where_the_class_token_goes(tiny, position, class_specific):
    n_ctx, width = 6, tiny.model.token_embedding.weight.shape[1]
    learner = prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=n_ctx, class_specific=class_specific,
                                      class_token_position=position, generator=torch.Generator().manual_seed(0))
    assert learner.ctx.shape == ((len(CLASSNAMES), n_ctx, width) if class_specific else (n_ctx, width))
    embeddings = learner.prompt_embeddings()
    context_length = tiny.model.positional_embedding.shape[0]
    assert embeddings.shape == (len(CLASSNAMES), context_length, width)
    ctx = learner.ctx if class_specific else learner.ctx.expand(len(CLASSNAMES), -1, -1)
    for i, name_len in enumerate(learner.name_lens):
        first = {"end": 1, "middle": 1, "front": 1 + name_len}[position]
        half = n_ctx // 2 if position == "middle" else n_ctx
        torch.testing.assert_close(embeddings[i, first:first + half], ctx[i, :half])
        name_at = {"end": 1 + n_ctx, "middle": 1 + half, "front": 1}[position]
        torch.testing.assert_close(embeddings[i, name_at:name_at + name_len], learner.token_suffix[i, :name_len])
    assert learner().shape == (len(CLASSNAMES), tiny.model.text_projection.shape[1])


def test_only_the_context_receives_gradients(tiny):
    learner = prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=4, generator=torch.Generator().manual_seed(0))
    assert [name for name, _ in learner.named_parameters()] == ["ctx"]
    assert list(learner.state_dict()) == ["ctx"]
    learner().sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny.model.parameters())


def test_loss_decreases_over_a_few_sgd_steps(tiny):
    torch.manual_seed(0)
    learner = prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=4, generator=torch.Generator().manual_seed(0))
    images = F.normalize(torch.randn(12, tiny.model.text_projection.shape[1]), dim=-1)
    labels = torch.arange(12) % len(CLASSNAMES)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.05, momentum=0.9)

    def loss():
        return F.cross_entropy(20 * images @ F.normalize(learner(), dim=-1).T, labels)

    first = loss().item()
    for _ in range(10):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert loss().item() < first


def test_random_init_is_seeded_and_has_the_papers_scale(tiny):
    def make(seed):
        return prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=16, generator=torch.Generator().manual_seed(seed))

    torch.testing.assert_close(make(1).ctx, make(1).ctx)
    assert not torch.equal(make(1).ctx, make(2).ctx)
    assert abs(float(make(1).ctx.detach().std()) - 0.02) < 0.003


def test_bad_arguments_name_the_accepted_values(tiny):
    with pytest.raises(ValueError, match="accepted: end, middle, front"):
        prompting.PromptLearner(tiny, CLASSNAMES, class_token_position="left")
    with pytest.raises(ValueError, match="n_ctx must be a positive integer"):
        prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=0)
    with pytest.raises(ValueError, match="exceed the text tower's context length"):
        prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=60)


def test_load_context_and_released_checkpoints(tiny, tmp_path):
    learner = prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=4, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(4, learner.ctx.shape[1]).half()  # the released prompts were trained in fp16
    path = tmp_path / "prompt_learner" / "model.pth.tar-50"
    path.parent.mkdir()
    torch.save({"state_dict": {"ctx": ctx, "token_prefix": torch.zeros(1)}, "epoch": 50}, path)
    learner.load_context(prompting.load_coop_context(path))
    torch.testing.assert_close(learner.ctx.detach(), ctx.float())
    with pytest.raises(ValueError, match="does not fit"):
        learner.load_context(torch.zeros(16, learner.ctx.shape[1]))
    with pytest.raises(FileNotFoundError, match="drive.google.com"):
        prompting.load_coop_context(tmp_path / "missing.pth.tar-50")
    torch.save({"state_dict": {"weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(KeyError, match="no CoOp context"):
        prompting.load_coop_context(tmp_path / "other.pth")


def test_learning_rate_follows_dassl_constant_warmup_then_cosine():
    """Dassl: ConstantWarmupScheduler(CosineAnnealingLR(T_max=max_epoch)), stepped once per epoch."""
    max_epochs, base = 10, 0.002
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=base)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs)
    expected = [1e-5]  # the warm-up epoch; the cosine's count restarts after it
    for _ in range(max_epochs - 1):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        cosine.step()
    ours = [prompting.coop_learning_rate(e, max_epochs, base) for e in range(max_epochs)]
    assert ours == pytest.approx(expected, rel=1e-9)
    assert ours[1] == base and ours[-1] == pytest.approx(0.5 * base * (1 + math.cos(math.pi * 8 / 10)))


def test_unsupported_text_towers_are_refused():
    with pytest.raises(TypeError, match="open_clip text transformer"):
        prompting.text_tower(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("position", prompting.CLASS_TOKEN_POSITIONS)
def test_per_image_contexts_match_one_learner_per_image(tiny, position):
    """IP-CLIP / CoCoOp-style contexts: image b's prompts are those of a learner whose ctx is image b's context."""
    learner = prompting.PromptLearner(tiny, CLASSNAMES, n_ctx=5, class_token_position=position,
                                      generator=torch.Generator().manual_seed(0))
    contexts = torch.randn(3, 5, learner.ctx.shape[-1], generator=torch.Generator().manual_seed(1)) * 0.02
    with torch.no_grad():
        batched = learner.per_image_text_features(contexts)
        assert learner.prompt_embeddings(contexts).shape[:2] == (3, len(CLASSNAMES))
        for b in range(3):
            single = copy.deepcopy(learner)
            single.load_context(contexts[b])
            torch.testing.assert_close(batched[b], single(), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(learner.prompt_embeddings(None), learner.prompt_embeddings())
    with pytest.raises(ValueError, match=r"\(B, 5, "):
        learner.prompt_embeddings(torch.zeros(2, 4, learner.ctx.shape[-1]))
