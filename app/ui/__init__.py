"""The page for people at `/`: score a case, see why, choose a threshold, watch the model, score a
CSV. Plain HTML, CSS and JavaScript from `static/`, served by `add_ui` (app/ui/routes.py)."""

from app.ui.routes import add_ui

__all__ = ["add_ui"]
