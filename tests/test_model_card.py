"""The bundled model's card, rendered from the Jinja template and the model's metadata."""

from __future__ import annotations

from ser.inference import BUNDLED_MODEL, read_model_info
from tests.conftest import REPO


def test_card_is_rendered_from_the_model_and_says_when_it_is_unsure():
    from export.model_card import render

    card = render(BUNDLED_MODEL, None)
    info = read_model_info(BUNDLED_MODEL)
    assert card.startswith(f"# Model card: {info.name} {info.version}")
    threshold = f"{100 * info.uncertainty_threshold:.1f} %"
    assert f"below {threshold} come with `uncertain: true`" in card
    assert "## When the model says it is unsure" in card and "Risk-coverage" in card
    assert "\n\n\n" not in card
    # the committed card is this rendering (plus the export report's section)
    assert (REPO / "model_store" / "MODEL_CARD.md").read_text().startswith(card.split("## Reproduce")[0].split("## Export")[0])
