from tortoise import fields
from tortoise.models import Model


class TrustedDocument(Model):
    """An operation document allowed to run when PCG_TRUSTED_DOCUMENTS=enforce, by the SHA-256
    of its exact text (what clients send as a persisted query's hash)."""

    sha256 = fields.CharField(max_length=64, primary_key=True)
    body = fields.TextField()
    name = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "trusted_document"
