"""A training stage's verdict, healthy or sick, from its history and its benchmark, against the criteria the course
teaches (chapter 4, "What to expect"; chapter 5's healthy and sick curves).

``judge(history, stage, kind, before, after)`` returns a ``Verdict``; ``str(verdict)`` is one line such as
"healthy: detail 0.31 -> 0.58 (1.9x), PSNR -1.2 dB, colour 0.8, adversarial 4% of the generator's loss, ...",
or "sick: ... Likely cause: ...". ``before`` and ``after`` are benchmark results of one set ({"psnr", "detail",
"colour"}, as ``srlib.benchmark`` reports them): for a pretraining stage bicubic and the trained generator, for a
GAN stage the generator it started from and the GAN's. Without them the verdict uses the history's validation PSNR.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# the criteria, one name each; chapters 4 and 5 teach them
MAX_PSNR_COST = 3.0  # dB a GAN stage may give up for detail (the paper's SRGAN: 2.7 dB below SRResNet on Set5)
MIN_DETAIL_GAIN = 1.1  # a GAN stage that raises the detail ratio less than this has done nothing visible
MAX_COLOUR = 2.0  # grey levels of colour shift beyond which the output has a visible cast
MAX_ADVERSARIAL_SHARE = 0.5  # the adversarial term's share of the generator's loss beyond which nothing anchors it
WON = 0.98  # the discriminator's accuracy on SR patches beyond which it has won
MIN_WARM_UP_ACCURACY = 0.6  # the warm-up's mean accuracy on HR and SR below which it learnt next to nothing
WINDOW = 25  # the final steps the losses and accuracies are averaged over (chapter 5's smoothing)


@dataclass
class Verdict:
    healthy: bool
    facts: list[str]
    causes: list[str] = field(default_factory=list)  # for a sick run: what is wrong and its likely cause

    def __str__(self) -> str:
        if self.healthy:
            return "healthy: " + ", ".join(self.facts)
        return "sick: " + "; ".join(self.causes) + " (" + ", ".join(self.facts) + ")"


def _rows(history: list[dict], stage: str, key: str) -> list[float]:
    return [float(r[key]) for r in history if r.get("stage") == stage and isinstance(r.get(key), (int, float))]


def _final(history: list[dict], stage: str, key: str, window: int = WINDOW) -> float | None:
    values = _rows(history, stage, key)[-window:]
    return sum(values) / len(values) if values else None


def adversarial_share(history: list[dict], stage: str, window: int = WINDOW) -> float | None:
    """The adversarial term's mean share of the generator's loss over the stage's last ``window`` steps."""
    rows = [r for r in history if r.get("stage") == stage and isinstance(r.get("adversarial"), (int, float))
            and isinstance(r.get("g_loss"), (int, float)) and r["g_loss"] > 0][-window:]
    return sum(r["adversarial"] / r["g_loss"] for r in rows) / len(rows) if rows else None


def _psnr_change(history, stage, before, after) -> tuple[float | None, str]:
    """The stage's change in PSNR and where it was measured: the benchmark, or its first and last validation."""
    if before and after:
        return after["psnr"] - before["psnr"], ""
    rows = [r for r in history if r.get("stage") == stage and isinstance(r.get("val_psnr"), (int, float))]
    if len(rows) < 2:
        return None, ""
    return rows[-1]["val_psnr"] - rows[0]["val_psnr"], f" (validation, steps {rows[0]['step']} to {rows[-1]['step']})"


def judge_pretraining(before: dict, after: dict) -> Verdict:
    """A pretraining stage: ``before`` is bicubic on a set, ``after`` the trained generator on it (detail and colour
    may be missing, as in a validation, which measures PSNR only)."""
    gain = after["psnr"] - before["psnr"]
    facts = [f"PSNR {after['psnr']:.2f} dB, {gain:+.2f} dB over bicubic"]
    if "detail" in before and "detail" in after:
        facts.append(f"detail {before['detail']:.2f} -> {after['detail']:.2f}")
    if "colour" in after:
        facts.append(f"colour {after['colour']:.1f}")
    causes = []
    if gain <= 0:
        causes.append("below bicubic: too few steps, a learning rate too high or too low, or a content loss that does "
                      "not measure pixels (VGG features, random without ImageNet's weights)")
    if after.get("colour", 0) > MAX_COLOUR:
        causes.append(f"a colour cast of {after['colour']:.1f} grey levels: the content loss does not hold colours "
                      "(a VGG loss) or the run diverged")
    return Verdict(not causes, facts, causes)


def judge_discriminator(history: list[dict], stage: str) -> Verdict:
    """The discriminator's warm-up, from its accuracies over its last steps."""
    real, fake = _final(history, stage, "d_acc_real"), _final(history, stage, "d_acc_fake")
    if real is None or fake is None:
        return Verdict(False, ["no discriminator steps in the history"], ["the stage has not run"])
    loss = _final(history, stage, "d_loss")
    facts = [f"accuracy {real:.2f} on HR / {fake:.2f} on SR patches"] + ([f"loss {loss:.2f}"] if loss is not None else [])
    causes = []
    if (real + fake) / 2 < MIN_WARM_UP_ACCURACY:
        causes.append("the discriminator tells HR from SR little better than a coin: too few steps or a learning "
                      "rate too low")
    return Verdict(not causes, facts, causes)


def judge_gan(history: list[dict], stage: str, before: dict | None = None, after: dict | None = None) -> Verdict:
    """A GAN stage: ``before`` is the generator it started from on a set, ``after`` the GAN's (both optional)."""
    facts, causes = [], []
    if before and after:
        gain = after["detail"] / before["detail"] if before["detail"] > 0 else float("inf")
        facts.append(f"detail {before['detail']:.2f} -> {after['detail']:.2f} ({gain:.1f}x)")
    change, where = _psnr_change(history, stage, before, after)
    if change is not None:
        facts.append(f"PSNR {change:+.1f} dB{where}")
    if after:
        facts.append(f"colour {after['colour']:.1f}")
    share = adversarial_share(history, stage)
    if share is not None:
        facts.append(f"adversarial {100 * share:.0f}% of the generator's loss")
    real, fake = _final(history, stage, "d_acc_real"), _final(history, stage, "d_acc_fake")
    if fake is not None:
        facts.append(f"discriminator accuracy {real:.2f} on HR / {fake:.2f} on SR")
    # the likely cause first where two symptoms have one
    if share is not None and share > MAX_ADVERSARIAL_SHARE:
        causes.append(f"the adversarial term is {100 * share:.0f}% of the generator's loss, so nothing ties it to the "
                      "HR image (a content loss too small: VGG features with random weights, or w_Gen too large)")
    if fake is not None and fake >= WON and real is not None and real >= WON:
        causes.append("the discriminator has won (it catches every SR patch), so the adversarial gradient only says "
                      "'fake' (a learning rate too high, or a generator too weak to start a GAN from)")
    if change is not None and change < -MAX_PSNR_COST:
        causes.append(f"PSNR fell {-change:.1f} dB, more than the {MAX_PSNR_COST:g} dB that detail costs")
    if after and after["colour"] > MAX_COLOUR:
        causes.append(f"a colour cast of {after['colour']:.1f} grey levels")
    if before and after and after["detail"] < MIN_DETAIL_GAIN * before["detail"]:
        causes.append("no detail gained: too few GAN steps or too small an adversarial weight")
    return Verdict(not causes, facts, causes)


MIN_REAL_GAIN = 1.0  # dB a model for real photos gains over the bicubic-trained ones on the degraded sets (issue 24)
MAX_CLEAN_COST = 1.5  # dB it may give up on clean (bicubic) inputs against the bicubic-trained SRResNet


def judge_real_photos(psnr: dict[str, dict[str, float]], model: str, bicubic_trained: list[str]) -> Verdict:
    """The verdict on a model for real photos from its PSNR on one set with LR inputs made several ways
    (``psnr``: {degradation: {label: PSNR dB}}, with "bicubic" and "realistic" among the degradations): healthy when
    on "realistic" it beats each of ``bicubic_trained`` by ``MIN_REAL_GAIN`` and on "bicubic" it loses at most
    ``MAX_CLEAN_COST`` to the first of them. The gains on the other degradations (JPEG) are reported too."""
    facts, causes = [], []
    for degradation, row in psnr.items():
        if degradation == "bicubic":
            continue
        gain = min(row[model] - row[other] for other in bicubic_trained)
        facts.append(f"{degradation} {gain:+.2f} dB against the best bicubic-trained model")
        if degradation == "realistic" and gain < MIN_REAL_GAIN:
            how = f"gains only {gain:.2f} dB" if gain >= 0 else f"is {-gain:.2f} dB below them"
            causes.append(f"on realistic inputs it {how} (at least {MIN_REAL_GAIN:g} dB over them is the aim): too "
                          "few steps, too few degraded samples (bicubic_prob and bicubic_jpeg_prob of "
                          "srlib.realistic.MIXED), or inputs that keep too little of the image for any network "
                          "(compare bicubic's figure)")
    cost = psnr["bicubic"][bicubic_trained[0]] - psnr["bicubic"][model]
    facts.append(f"bicubic (clean) {-cost:+.2f} dB against {bicubic_trained[0]}")
    if cost > MAX_CLEAN_COST:
        causes.append(f"on bicubic (clean) inputs it loses {cost:.2f} dB, over {MAX_CLEAN_COST:g} dB: it takes every "
                      "input for a blurred, noisy one (more clean samples: bicubic_prob)")
    return Verdict(not causes, facts, causes)
