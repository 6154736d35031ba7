from tortoise import fields
from tortoise.models import Model


class BoardEvent(Model):
    """The durable log of what changed on a board; `seq` is dense per project."""

    id = fields.BigIntField(primary_key=True)
    project = fields.ForeignKeyField("models.Project", related_name="events")
    seq = fields.BigIntField()
    type = fields.CharField(max_length=64)
    payload = fields.JSONField(default=dict)
    actor = fields.ForeignKeyField("models.User", related_name="board_events", null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "board_event"
        unique_together = (("project", "seq"),)
