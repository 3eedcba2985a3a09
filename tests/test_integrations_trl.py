"""End to end: a few real GRPO steps with TRL on CPU, with the Band loss plugged in.

Nothing is downloaded: the tokenizer is a word-level ``tokenizers`` model over 28 words built
here, the model a 1-layer Llama initialised at random from a config, the prompts and the reward
live in memory.  Skipped when TRL is not installed (``pip install 'bandpo[trl]'``).
"""

from __future__ import annotations

import math
import sys

import pytest
import torch


def test_missing_trl_raises_an_import_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # makes `import trl` fail
    monkeypatch.delitem(sys.modules, "bandpo.integrations.trl", raising=False)
    with pytest.raises(ImportError, match=r"bandpo\[trl\]"):
        import bandpo.integrations.trl  # noqa: F401


def _tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(28)]
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<unk>", *words])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece()  # joins word pieces with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


@pytest.fixture
def one_thread():
    # A 1-layer model gains nothing from intra-op threads, and on a loaded 2-core machine
    # multi-threaded kernels spin against other processes (several times slower).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_grpo_steps_with_the_band_loss(tmp_path, one_thread):
    pytest.importorskip("trl")
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback
    from trl import GRPOConfig

    from bandpo.integrations.trl import BandGRPOTrainer, BandLossConfig

    tokenizer = _tiny_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    dataset = Dataset.from_dict({"prompt": [f"w{i} w{i + 1} w{i + 2}" for i in range(8)]})

    low_words = {f"w{i}" for i in range(10)}

    def reward_low_words(completions, **kwargs):
        # Fraction of the completion's words among w0..w9: graded, so groups rarely tie.
        return [
            sum(w in low_words for w in c.split()) / max(len(c.split()), 1) for c in completions
        ]

    logs: list[dict] = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                recorded.append(dict(logs))

    recorded = logs
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=6,
        max_steps=4,
        num_iterations=2,  # reuse each generation: the second pass has r != 1
        learning_rate=0.2,  # large, so that the policy moves past the Band within a batch
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        beta=0.0,
        loss_type="grpo",
    )
    trainer = BandGRPOTrainer(
        model=model,
        reward_funcs=reward_low_words,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        band=BandLossConfig(delta=0.05, divergence="kl"),
        callbacks=[Record()],
    )
    trainer.train()

    step_logs = [entry for entry in logs if "band/width" in entry]
    for entry in step_logs:
        print({k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()})
    assert len(step_logs) == 4
    for entry in step_logs:
        for key in ("entropy", "band/width", "band/approx_kl", "clip_ratio/high_mean", "loss"):
            assert math.isfinite(float(entry[key])), key
        assert float(entry["band/width"]) > 0
    # The reused generation is evaluated after an optimiser step: ratios moved off 1, and
    # (deterministic at seed 0) past the Band on some tokens, so the clip bound there.
    assert any(float(e["band/ratio_max"]) != 1.0 for e in step_logs)
    assert any(float(e["band/clip_frac"]) > 0 for e in step_logs)
    # Gradients flowed: every parameter tensor moved.
    changed = [k for k, v in model.named_parameters() if not torch.equal(before[k], v.detach())]
    assert len(changed) == len(before)

    # The trainer's loss is band_policy_loss on the model's own per-token log-probabilities,
    # with TRL's "grpo" normalisation (seq-mean-token-mean), on a hand-made batch with padding.
    from bandpo import band_policy_loss

    g = torch.Generator().manual_seed(5)
    prompt_ids = torch.randint(3, len(tokenizer), (4, 3), generator=g)
    completion_ids = torch.randint(3, len(tokenizer), (4, 5), generator=g)
    completion_mask = torch.ones(4, 5, dtype=torch.long)
    completion_mask[1, 3:] = 0
    completion_mask[3, 1:] = 0
    with torch.no_grad():
        logits = model(torch.cat([prompt_ids, completion_ids], 1)).logits[:, 2:-1]
        logps = torch.log_softmax(logits.float(), -1).gather(-1, completion_ids[..., None])[..., 0]
    old = logps + 0.4 * torch.randn(logps.shape, generator=g)  # the policy moved since sampling
    old[1, :2] = logps[1, :2] + 3.0  # A < 0 and r = e^-3: below the Band's lower end
    old = torch.where(completion_mask.bool(), old.clamp(max=0), float("nan"))  # NaN at padding
    advantages = torch.tensor([1.5, -0.7, 0.2, -2.0])
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones_like(prompt_ids),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": advantages,
        "old_per_token_logps": old,
    }
    model.eval()  # eval mode: no gradient-accumulation scaling
    got = trainer._compute_loss(model, inputs)
    want, band_metrics = band_policy_loss(
        old,
        logps,
        advantages[:, None].expand_as(logps),
        completion_mask,
        loss_agg_mode="seq-mean-token-mean",
    )
    assert float(band_metrics.clip_frac) > 0  # some tokens sit outside their Band
    assert torch.isfinite(got)
    got, want = float(got.detach()), float(want)
    print(f"trainer loss {got:.6f}, band_policy_loss {want:.6f}")
    assert abs(got - want) <= 1e-5 * max(1.0, abs(want))

    # With a KL penalty (beta != 0), TRL's k3 term exp(ref - lp) - (ref - lp) - 1 is added with
    # the same aggregation; padding of the reference log-probs may hold NaN too.
    ref = torch.where(completion_mask.bool(), logps + 0.3, float("nan"))
    trainer.beta = 0.04
    trainer.args.use_bias_correction_kl = False
    got_kl = float(trainer._compute_loss(model, {**inputs, "ref_per_token_logps": ref}).detach())
    d = (ref - logps)[completion_mask.bool()]
    k3 = (d.exp() - d - 1).reshape(-1)
    per_seq = torch.split(k3, completion_mask.sum(-1).tolist())
    kl = torch.stack([x.mean() for x in per_seq]).mean()
    assert abs(got_kl - (want + 0.04 * float(kl))) <= 1e-5 * max(1.0, abs(got_kl))


def test_band_loss_config_is_validated():
    pytest.importorskip("trl")
    from bandpo.integrations.trl import BandLossConfig, BandLossMixin

    class NoTrainer:  # the mixin validates before calling the trainer's __init__
        def __init__(self, *args, **kwargs):
            raise AssertionError("not reached")

    class Bad(BandLossMixin, NoTrainer):
        pass

    with pytest.raises(ValueError, match="unknown divergence"):
        Bad(band=BandLossConfig(divergence="nope"))
    with pytest.raises(ValueError, match="loss_agg_mode"):
        Bad(band=BandLossConfig(loss_agg_mode="mean"))
    with pytest.raises(TypeError, match="BandLossConfig"):
        Bad(band={"delta": 0.05})
