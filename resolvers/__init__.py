"""The logic: access checks, reads, writes, loaders, events. Functions take (ctx, ...) and
return models or plain data; Strawberry stays in schema/."""
