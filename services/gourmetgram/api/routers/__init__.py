"""One router per resource; ``gourmetgram.api.app`` includes them all."""

from gourmetgram.api.routers import comments, flags, health, uploads, users, views

ALL = (users.router, uploads.router, views.router, comments.router, flags.router, health.router)
