"""srlib.verdict: a stage's verdict against the course's healthy and sick criteria."""

from srlib.verdict import adversarial_share, judge_discriminator, judge_gan, judge_pretraining


def _gan_history(adversarial: float, acc_fake: float, steps: int = 30) -> list[dict]:
    rows = [{"stage": "gan", "step": s, "g_loss": 0.01 + adversarial, "adversarial": adversarial, "content": 0.01,
             "d_acc_real": 0.7, "d_acc_fake": acc_fake} for s in range(1, steps + 1)]
    return rows + [{"stage": "mse", "step": 1, "g_loss": 1.0, "adversarial": 0.0}]


def test_a_gan_that_trades_a_little_psnr_for_detail_is_healthy_and_says_its_numbers():
    verdict = judge_gan(_gan_history(0.0005, 0.7), "gan", {"psnr": 27.9, "detail": 0.31, "colour": 0.2},
                        {"psnr": 26.7, "detail": 0.58, "colour": 0.8})
    assert verdict.healthy
    assert str(verdict) == ("healthy: detail 0.31 -> 0.58 (1.9x), PSNR -1.2 dB, colour 0.8, adversarial 5% of the "
                            "generator's loss, discriminator accuracy 0.70 on HR / 0.70 on SR")


def test_a_gan_ruled_by_its_adversarial_term_is_sick_with_its_causes():
    verdict = judge_gan(_gan_history(0.2, 1.0), "gan", {"psnr": 27.6, "detail": 0.1, "colour": 0.8},
                        {"psnr": 23.4, "detail": 0.2, "colour": 17.0})
    text = str(verdict)
    assert not verdict.healthy and text.startswith("sick: the adversarial term is 95% of the generator's loss")
    assert "PSNR fell 4.2 dB" in text and "colour cast of 17.0" in text and "random weights" in text


def test_a_gan_without_detail_gained_is_named_sick_and_validation_psnr_stands_in_for_a_benchmark():
    assert "no detail gained" in str(judge_gan([], "gan", {"psnr": 30, "detail": 0.3, "colour": 0},
                                               {"psnr": 30, "detail": 0.31, "colour": 0}))
    history = [{"stage": "gan", "step": 1, "val_psnr": 30.0}, {"stage": "gan", "step": 9, "val_psnr": 29.5}]
    assert str(judge_gan(history, "gan")) == "healthy: PSNR -0.5 dB (validation, steps 1 to 9)"
    assert adversarial_share(_gan_history(0.01, 0.5), "mse") == 0.0


def test_pretraining_is_judged_against_bicubic_and_the_warm_up_by_its_accuracy():
    bicubic = {"psnr": 28.42, "detail": 0.05, "colour": 0.02}
    assert str(judge_pretraining(bicubic, {"psnr": 29.06, "detail": 0.10, "colour": 0.8})) == (
        "healthy: PSNR 29.06 dB, +0.64 dB over bicubic, detail 0.05 -> 0.10, colour 0.8")
    sick = judge_pretraining(bicubic, {"psnr": 27.64, "detail": 0.10, "colour": 3.0})
    assert not sick.healthy and "below bicubic" in str(sick) and "colour cast of 3.0" in str(sick)
    coin = [{"stage": "d", "d_acc_real": 0.5, "d_acc_fake": 0.5, "d_loss": 1.39}] * 5
    sure = [{"stage": "d", "d_acc_real": 0.9, "d_acc_fake": 0.95, "d_loss": 0.4}] * 5
    assert not judge_discriminator(coin, "d").healthy and "coin" in str(judge_discriminator(coin, "d"))
    assert str(judge_discriminator(sure, "d")) == "healthy: accuracy 0.90 on HR / 0.95 on SR patches, loss 0.40"


def test_a_validation_judges_pretraining_by_psnr_alone():
    assert str(judge_pretraining({"psnr": 28.0}, {"psnr": 27.5})).startswith("sick: below bicubic")
    assert str(judge_pretraining({"psnr": 28.0}, {"psnr": 28.5})) == "healthy: PSNR 28.50 dB, +0.50 dB over bicubic"


def test_a_model_for_real_photos_must_gain_on_degraded_inputs_and_keep_most_of_the_clean_psnr():
    from srlib.verdict import judge_real_photos

    psnr = {"bicubic": {"real": 27.0, "srresnet": 28.2, "gan": 26.9},
            "realistic": {"real": 24.0, "srresnet": 22.5, "gan": 22.0},
            "jpeg50": {"real": 25.5, "srresnet": 25.2, "gan": 24.8}}
    verdict = judge_real_photos(psnr, "real", ["srresnet", "gan"])
    assert verdict.healthy and str(verdict) == ("healthy: realistic +1.50 dB against the best bicubic-trained model, "
                                                "jpeg50 +0.30 dB against the best bicubic-trained model, "
                                                "bicubic (clean) -1.20 dB against srresnet")
    psnr["realistic"]["real"] = 23.2
    verdict = judge_real_photos(psnr, "real", ["srresnet", "gan"])
    assert not verdict.healthy and "on realistic inputs it gains only 0.70 dB" in str(verdict)
    psnr["realistic"]["real"] = 22.3
    assert "on realistic inputs it is 0.20 dB below them" in str(judge_real_photos(psnr, "real", ["srresnet", "gan"]))
    psnr["realistic"]["real"], psnr["bicubic"]["real"] = 24.0, 26.5
    verdict = judge_real_photos(psnr, "real", ["srresnet", "gan"])
    assert not verdict.healthy and str(verdict).startswith("sick: on bicubic (clean) inputs it loses 1.70 dB, over 1.5")
