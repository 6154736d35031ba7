"""The reply engine: one background task per NORA reply, outliving the request that asked.

A generation runs provider turns and tools until the model answers in plain text, writing
everything to the conversation's event log as it goes:
MessageStarted (by sendNoraMessage) → TextDelta* / ToolCallStarted → ToolCallFinished … →
MessageCompleted | MessageFailed | MessageCancelled. The final message is stored whether or
not anyone listens.

Text is coalesced: at most one TextDelta per COALESCE_SECONDS per message. The provider is
read by a separate producer task feeding a queue, so a flush can be timed without
cancelling the provider's stream, and stopping a reply is cancelling that producer (which
closes the provider's HTTP request).

Stopping: `Generation.stop(reason)` from cancelNoraMessage on this instance, a message on
`nora-cancel:<message id>` from another instance, or the message's `cancel_requested`
flag, which every write of the generator checks. Shutdown stops every generation; each
ends FAILED (INTERRUPTED) with what was written. A reply acts as its asker, so it also stops
when the asker's credential ends (resolvers/nora/credential.py): its session ended, on the
signal that closes the session's websockets, or its API key revoked, on the access nudge;
and the credential is checked before every tool call. It ends FAILED (SESSION_ENDED,
API_KEY_REVOKED) with what was written.

Crashes: every reply carries its instance's random id (`owner_instance`), and the instance
beats for all its running replies at once (one UPDATE of `heartbeat_at` every BEAT_SECONDS
at most). A reply whose heartbeat is older than PCG_NORA_ORPHAN_AFTER has lost its generator
(kill -9, crash, a machine gone): the sweeper of every instance, and each instance at
startup, ends it FAILED (INTERRUPTED) with its MessageFailed event, and the conversation
takes new messages again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson
from tortoise import timezone
from tortoise.expressions import Q

from models import (
    NoraConversation,
    NoraEvent,
    NoraEventType,
    NoraMessage,
    NoraMessageStatus,
    NoraRole,
    NoraUsageEntry,
    Organization,
    Project,
    UsageKind,
    orm,
)
from models.snapshot import dump
from resolvers import metrics
from resolvers.access import Access
from resolvers.broadcast import GAP
from resolvers.context import Context
from resolvers.errors import AppError, BadInput, QuotaExceeded
from resolvers.event.log import access_channel
from resolvers.loaders import Loaders
from resolvers.nora import credential, tools
from resolvers.nora.events import cancel_channel
from resolvers.nora.limits import check_quota, make_rate_limiter
from resolvers.nora.providers import (
    Chunk,
    Provider,
    ProviderError,
    TextChunk,
    ToolCall,
    Usage,
    estimate_tokens,
    make_provider,
)
from resolvers.unit_of_work import unit_of_work

if TYPE_CHECKING:
    from models import User
    from resolvers.broadcast import Hub
    from server.settings import Settings

log = logging.getLogger("pcg.nora")

COALESCE_SECONDS = 0.03
MAX_TOOL_ROUNDS = 5
HISTORY_LIMIT = 40
# A reply written by an instance older than the heartbeat (no heartbeat_at): gone when it
# has not been written for this long.
STALE_AFTER = timedelta(minutes=3)
# The heartbeat and the sweep run several times per orphan window (PCG_NORA_ORPHAN_AFTER),
# so a live reply misses several beats before it could look orphaned.
BEAT_SECONDS = 2.0
SWEEP_SECONDS = 5.0
PRUNE_SECONDS = 3600.0
SHUTDOWN_GRACE = 5.0
# While waiting for a silent provider, look at the cancel flag this often, and show that the
# generator is alive (updated_at) this often, so the sweeper never ends a live reply.
CANCEL_POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 30.0

class _Signal(Enum):
    """What a turn's queue carries besides chunks and the producer's error."""

    END = "end"  # the provider's stream is over
    WAKE = "wake"  # stop() was called: look at the reason now


_END = _Signal.END
_WAKE = _Signal.WAKE
# A turn's queue: the provider's chunks, its error, or a signal.
_Item = Chunk | BaseException | _Signal


class Stop(Exception):
    """The generation must end now: `reason` is cancel, shutdown, taken (someone else
    already ended the message), or one of credential.ENDINGS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Halted(Exception):
    """Inside a write: the message is no longer ours to write (rolls the transaction back)."""


# -- the runtime: one per app instance ------------------------------------------------------------


class NoraRuntime:
    def __init__(self, settings: Settings, broadcast: Hub, provider: Provider | None = None) -> None:
        self.settings = settings
        self.broadcast = broadcast
        self.provider = provider or make_provider(settings)
        self.limiter = make_rate_limiter(settings.broadcast_url)
        self.running: dict[int, Generation] = {}
        # Random per process: a restarted instance never mistakes its predecessor's replies
        # for its own.
        self.instance_id = secrets.token_hex(8)
        self.orphan_after = timedelta(seconds=settings.nora_orphan_after)
        window = self.orphan_after.total_seconds()
        self.beat_seconds = min(BEAT_SECONDS, max(0.1, window / 5))
        self.sweep_seconds = min(SWEEP_SECONDS, max(0.2, window / 4))
        self._sweeper: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        await self.limiter.connect()
        try:
            await self.sweep()
        except Exception:  # noqa: BLE001 - never block startup on housekeeping
            log.warning("NORA recovery sweep failed", exc_info=True)
        self._beater = asyncio.create_task(self._beat_forever(), name="nora-heartbeat")
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="nora-sweeper")

    async def stop(self) -> None:
        """End every running reply (FAILED, with what was written) before the app stops."""
        self._closing = True
        for task in (self._sweeper, self._beater):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        generations = list(self.running.values())
        for generation in generations:
            generation.stop("shutdown")
        if generations:
            _, pending = await asyncio.wait([g.task for g in generations], timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.limiter.close()

    def launch(self, ctx: Context, conversation: NoraConversation, user_message: NoraMessage, reply: NoraMessage) -> Generation:
        # The request's context ends with the request: the reply gets its own, acting as the
        # same principal (API key caps included) with fresh memberships and loaders.
        base = dataclasses.replace(
            ctx, request=None, response=None, connection_params=None,
            request_id=f"nora-{reply.id}", access=Access(ctx.access.principal), loaders=Loaders(),
        )
        generation = Generation(self, base, conversation, user_message, reply)
        self.running[reply.id] = generation
        if self._closing:
            generation.stop("shutdown")
        return generation

    async def request_cancel(self, message_id: int) -> None:
        generation = self.running.get(message_id)
        if generation is not None:
            generation.stop("cancel")
            return
        try:
            await self.broadcast.publish(channel=cancel_channel(message_id), message="{}")
        except Exception as exc:  # noqa: BLE001 - the DB flag still stops it at its next write
            log.warning("publishing a NORA cancel request failed (%s)", exc)

    async def wait(self, message_id: int, timeout: float) -> None:
        """Until the message leaves STREAMING (here or on another instance), or timeout."""
        generation = self.running.get(message_id)
        deadline = time.monotonic() + timeout
        if generation is not None:
            await asyncio.wait([generation.task], timeout=timeout)
            return
        while time.monotonic() < deadline:
            status = await orm.first_value(NoraMessage.filter(id=message_id), "status")
            if status != NoraMessageStatus.STREAMING:
                return
            await asyncio.sleep(0.05)

    def orphaned(self, message: NoraMessage) -> bool:
        """Has the reply's generator stopped beating (its instance is gone)?"""
        now = timezone.now()
        if message.heartbeat_at is not None:
            return now - message.heartbeat_at > self.orphan_after
        return now - message.updated_at > STALE_AFTER

    async def beat(self) -> int:
        """One UPDATE for all of this instance's running replies: they are alive."""
        if not self.running:
            return 0
        return await NoraMessage.filter(
            id__in=list(self.running), owner_instance=self.instance_id, status=NoraMessageStatus.STREAMING
        ).update(heartbeat_at=timezone.now())

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self.beat_seconds)
            try:
                await self.beat()
            except Exception as exc:  # noqa: BLE001 - the next beat tries again
                log.warning("NORA heartbeat failed (%s)", exc)

    def system_context(self) -> Context:
        """The context of this instance's own writes (sweeping orphans): no caller, no request."""
        return Context(settings=self.settings, access=Access(None), broadcast=self.broadcast, request_id="nora-sweep")

    async def sweep(self) -> int:
        """End replies whose generator died (no heartbeat for PCG_NORA_ORPHAN_AFTER):
        crash recovery, at startup and every few seconds on every instance."""
        now = timezone.now()
        stale = await NoraMessage.filter(
            Q(heartbeat_at__lt=now - self.orphan_after)
            | Q(heartbeat_at__isnull=True, updated_at__lt=now - STALE_AFTER),
            role=NoraRole.ASSISTANT, status=NoraMessageStatus.STREAMING,
        ).exclude(id__in=list(self.running) or [0])
        ended = 0
        for message in stale:
            # end_orphan takes only a row still STREAMING: when two instances sweep the
            # same reply, one ends it and the other finds nothing to do.
            if await end_orphan(
                self.system_context(), message, NoraMessageStatus.FAILED, "INTERRUPTED",
                "NORA stopped answering (its server stopped); ask again",
            ):
                ended += 1
                log.warning(
                    "ended NORA reply %s: instance %s stopped beating", message.id, message.owner_instance or "?"
                )
        return ended

    async def _sweep_forever(self) -> None:
        last_prune = 0.0
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self.sweep()
                if time.monotonic() - last_prune > PRUNE_SECONDS:
                    last_prune = time.monotonic()
                    cutoff = datetime.now(UTC) - timedelta(days=self.settings.event_retention_days)
                    await NoraEvent.filter(created_at__lt=cutoff).delete()
            except Exception:  # noqa: BLE001 - try again next round
                log.warning("NORA sweep failed", exc_info=True)


async def end_orphan(ctx: Context, message: NoraMessage, status: NoraMessageStatus, code: str | None, text: str | None) -> bool:
    """End a STREAMING reply that no generator is writing; False if it had already ended."""
    now = timezone.now()
    try:
        async with unit_of_work(ctx) as work:
            changed = await NoraMessage.filter(id=message.id, status=NoraMessageStatus.STREAMING).update(
                status=status, error_code=code, error_message=text, completed_at=now, updated_at=now
            )
            if changed != 1:
                raise _Halted()
            await NoraMessage.filter(reply_to_id=message.id, role=NoraRole.TOOL, status=NoraMessageStatus.STREAMING).update(
                status=NoraMessageStatus.FAILED, completed_at=now, updated_at=now,
                tool_result={"ok": False, "error": {"code": "INTERRUPTED", "message": "The reply ended first"}},
            )
            fresh = await NoraMessage.get(id=message.id)
            conversation = await NoraConversation.get(id=message.conversation_id)
            if tokens := estimate_tokens(fresh.content):
                await NoraUsageEntry.create(
                    organization_id=conversation.organization_id, user_id=conversation.user_id,
                    message_id=fresh.id, kind=UsageKind.TOKENS, amount=tokens,
                )
            await NoraConversation.filter(id=conversation.id).update(updated_at=now)
            await work.nora_event(conversation.id, *_final_event(fresh, code, text))
    except _Halted:
        return False
    return True


def _final_event(message: NoraMessage, code: str | None, text: str | None) -> tuple[NoraEventType, dict[str, Any]]:
    payload: dict[str, Any] = {"messageId": message.id, "message": dump(message)}
    if message.status is NoraMessageStatus.COMPLETE:
        usage = {"tokensIn": message.tokens_in, "tokensOut": message.tokens_out, "latencyMs": message.latency_ms}
        return NoraEventType.MESSAGE_COMPLETED, payload | {"usage": usage}
    if message.status is NoraMessageStatus.CANCELLED:
        return NoraEventType.MESSAGE_CANCELLED, payload
    return NoraEventType.MESSAGE_FAILED, payload | {"code": code, "error": text}


# -- one reply ---------------------------------------------------------------------------------


class ReplyWriter:
    """The reply's rows and events. Every write first checks that the message is still
    STREAMING and not cancelled, so a cancel on another instance stops the generator here."""

    def __init__(self, ctx: Context, conversation: NoraConversation, reply: NoraMessage) -> None:
        self.ctx = ctx
        self.conversation = conversation
        self.reply = reply
        self.content = ""
        self.flushed = 0
        self.index = 0
        self.last_flush = 0.0
        self.tokens_in = 0
        self.tokens_out = 0
        self.open_tool: NoraMessage | None = None
        self.beat = time.monotonic()

    @property
    def pending(self) -> bool:
        return len(self.content) > self.flushed

    @property
    def due(self) -> float:
        return self.last_flush + COALESCE_SECONDS

    def add(self, text: str) -> None:
        self.content += text

    def count(self, usage: Usage | None, prompt_estimate: int, text: str, calls: list[ToolCall]) -> None:
        if usage is not None:
            self.tokens_in += usage.tokens_in
            self.tokens_out += usage.tokens_out
        else:
            self.tokens_in += prompt_estimate
            self.tokens_out += estimate_tokens(text) + sum(estimate_tokens(c.arguments) for c in calls)

    async def _still_ours(self, now: datetime, **columns: Any) -> None:
        changed = await NoraMessage.filter(
            id=self.reply.id, status=NoraMessageStatus.STREAMING, cancel_requested=False
        ).update(updated_at=now, **columns)
        if changed != 1:
            raise _Halted()
        self.beat = time.monotonic()

    async def _why(self) -> str:
        status = await orm.first_value(NoraMessage.filter(id=self.reply.id), "status")
        return "cancel" if status == NoraMessageStatus.STREAMING else "taken"

    async def check(self) -> None:
        """Between turns and while the provider is silent: has someone asked us to stop?"""
        if ending := credential.ended(self.ctx):
            raise Stop(ending)
        if time.monotonic() - self.beat > HEARTBEAT_SECONDS:
            try:
                await self._still_ours(timezone.now())
            except _Halted:
                raise Stop(await self._why()) from None
            return
        row = await NoraMessage.filter(id=self.reply.id).first().values("status", "cancel_requested")
        if row is None or row["status"] != NoraMessageStatus.STREAMING:
            raise Stop("taken")
        if row["cancel_requested"]:
            raise Stop("cancel")

    def _delta(self) -> dict[str, Any]:
        return {"messageId": self.reply.id, "index": self.index, "offset": self.flushed, "text": self.content[self.flushed:]}

    async def flush(self) -> None:
        if not self.pending:
            return
        try:
            async with unit_of_work(self.ctx) as work:
                await self._still_ours(timezone.now(), content=self.content)
                await work.nora_event(self.conversation.id, NoraEventType.TEXT_DELTA, self._delta())
        except _Halted:
            raise Stop(await self._why()) from None
        self.flushed = len(self.content)
        self.index += 1
        self.last_flush = time.monotonic()

    async def tool_started(self, call: ToolCall, args: dict[str, Any] | None) -> NoraMessage:
        await self.flush()  # the text before the call goes out before it
        try:
            async with unit_of_work(self.ctx) as work:
                await self._still_ours(timezone.now())
                tool = await NoraMessage.create(
                    conversation_id=self.conversation.id, role=NoraRole.TOOL, status=NoraMessageStatus.STREAMING,
                    reply_to_id=self.reply.id, tool_call_id=call.id[:100], tool_name=call.name[:64],
                    tool_arguments=args if args is not None else {"unparsed": call.arguments[:2000]},
                    provider=self.reply.provider, model=self.reply.model,
                )
                await work.nora_event(self.conversation.id, NoraEventType.TOOL_CALL_STARTED, {
                    "messageId": self.reply.id, "toolCallId": tool.id, "name": tool.tool_name,
                    "arguments": tool.tool_arguments,
                })
        except _Halted:
            raise Stop(await self._why()) from None
        self.open_tool = tool
        return tool

    async def tool_finished(self, tool: NoraMessage, result: dict[str, Any]) -> None:
        # Recorded even when a cancel arrived meanwhile: the tool did run.
        now = timezone.now()
        ok = bool(result.get("ok"))
        async with unit_of_work(self.ctx) as work:
            await NoraMessage.filter(id=tool.id).update(
                status=NoraMessageStatus.COMPLETE if ok else NoraMessageStatus.FAILED, tool_result=result,
                completed_at=now, updated_at=now,
            )
            await NoraMessage.filter(id=self.reply.id).update(updated_at=now)
            await work.nora_event(self.conversation.id, NoraEventType.TOOL_CALL_FINISHED, {
                "messageId": self.reply.id, "toolCallId": tool.id, "name": tool.tool_name, "ok": ok,
                "result": result.get("result"), "error": result.get("error"),
            })
        self.open_tool = None

    async def finish(self, status: NoraMessageStatus, code: str | None, text: str | None, latency_ms: int) -> None:
        now = timezone.now()
        try:
            async with unit_of_work(self.ctx) as work:
                changed = await NoraMessage.filter(id=self.reply.id, status=NoraMessageStatus.STREAMING).update(
                    status=status, content=self.content, tokens_in=self.tokens_in, tokens_out=self.tokens_out,
                    latency_ms=latency_ms, error_code=code, error_message=text, completed_at=now, updated_at=now,
                )
                if changed != 1:
                    raise _Halted()
                if self.open_tool is not None:
                    await NoraMessage.filter(id=self.open_tool.id, status=NoraMessageStatus.STREAMING).update(
                        status=NoraMessageStatus.FAILED, completed_at=now, updated_at=now,
                        tool_result={"ok": False, "error": {"code": code or "CANCELLED", "message": "The reply ended first"}},
                    )
                if self.pending:
                    await work.nora_event(self.conversation.id, NoraEventType.TEXT_DELTA, self._delta())
                if total := self.tokens_in + self.tokens_out:
                    await NoraUsageEntry.create(
                        organization_id=self.conversation.organization_id, user_id=self.conversation.user_id,
                        message_id=self.reply.id, kind=UsageKind.TOKENS, amount=total,
                    )
                await NoraConversation.filter(id=self.conversation.id).update(updated_at=now)
                fresh = await NoraMessage.get(id=self.reply.id)
                await work.nora_event(self.conversation.id, *_final_event(fresh, code, text))
        except _Halted:
            return  # ended elsewhere (cancelled while idle, or swept): nothing more to say
        self.flushed = len(self.content)


class Generation:
    def __init__(self, runtime: NoraRuntime, ctx: Context, conversation: NoraConversation, user_message: NoraMessage, reply: NoraMessage) -> None:
        self.runtime = runtime
        self.ctx = ctx
        self.conversation = conversation
        self.user_message = user_message
        self.reply = reply
        self.reason: str | None = None
        self._queue: asyncio.Queue[_Item] | None = None
        self._producer: asyncio.Task[None] | None = None
        self.task = asyncio.create_task(self._run(), name=f"nora-reply-{reply.id}")

    def stop(self, reason: str) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        if self._producer is not None:
            self._producer.cancel()  # closes the provider's request
        if self._queue is not None:
            self._queue.put_nowait(_WAKE)

    def _check(self) -> None:
        # In-process (no statement): the session's end normally arrives through stop() from
        # the registry; this catches one that ended before the generation listened.
        if self.reason is None and (ending := credential.ended(self.ctx)):
            self.stop(ending)
        if self.reason is not None:
            raise Stop(self.reason)

    async def _run(self) -> None:
        started = time.monotonic()
        writer = ReplyWriter(self.ctx, self.conversation, self.reply)
        watcher = asyncio.create_task(self._watch())
        forget_session = credential.on_end(self.ctx, functools.partial(self.stop, credential.SESSION_ENDED))
        try:
            status, code, text = NoraMessageStatus.COMPLETE, None, None
            try:
                await self._generate(writer)
            except Stop as stop:
                self.reason = self.reason or stop.reason
            except ProviderError as error:
                status, code, text = NoraMessageStatus.FAILED, error.code, error.message
            except QuotaExceeded as error:
                status, code, text = NoraMessageStatus.FAILED, error.code, error.message
            except Exception:
                log.exception("NORA reply %s failed", self.reply.id)
                status, code, text = NoraMessageStatus.FAILED, "INTERNAL_ERROR", "NORA hit an unexpected error; try again"
            if self.reason == "taken":
                return
            if self.reason == "cancel":
                status, code, text = NoraMessageStatus.CANCELLED, None, None
            elif self.reason == "shutdown":
                status, code, text = (
                    NoraMessageStatus.FAILED, "INTERRUPTED", "The server stopped while NORA was answering; ask again",
                )
            elif self.reason in credential.ENDINGS:
                status = NoraMessageStatus.FAILED
                code, text = credential.ENDINGS[self.reason]
            await writer.finish(status, code, text, int((time.monotonic() - started) * 1000))
            metrics.nora_reply(self.reply.provider, code or status.value, writer.tokens_in, writer.tokens_out)
        except Exception:
            log.exception("NORA reply %s could not be finished", self.reply.id)
        finally:
            watcher.cancel()
            forget_session()
            self.runtime.running.pop(self.reply.id, None)

    async def _watch(self) -> None:
        """A cancel from another instance; for a reply asked with an API key, its creator's
        access nudge too (sent when the key is revoked), after which the key is read again."""
        cancel = cancel_channel(self.reply.id)
        channels = [cancel]
        if self.ctx.access.api_key is not None:
            channels.append(access_channel(self.ctx.access.user_id))
        try:
            async with self.runtime.broadcast.subscribe(*channels) as subscription:
                while True:
                    event = await subscription.get()
                    if event.channel == cancel:
                        # A GAP (the broker reconnected) is no cancel: a lost one is still
                        # found by the flag in the database, at the next write or check.
                        if event.message != GAP:
                            self.stop("cancel")
                            return
                    elif not await credential.key_still_valid(self.ctx):
                        self.stop(credential.KEY_REVOKED)
                        return
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the flag and the checks before each tool call still work
            log.warning("NORA cancel listener for %s failed", self.reply.id, exc_info=True)

    async def _generate(self, writer: ReplyWriter) -> None:
        chat = await build_chat(self.conversation, self.reply, self.ctx.access.user)
        for round_ in range(MAX_TOOL_ROUNDS + 1):
            self._check()
            await writer.check()
            await check_quota(self.runtime.settings, self.conversation.organization_id)
            # The last round offers no tools, so the model has to answer in words.
            offered = tools.SCHEMAS if round_ < MAX_TOOL_ROUNDS else []
            calls, text = await self._turn(writer, chat, offered)
            if not calls or not offered:
                return
            chat.append({
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                    for c in calls
                ],
            })
            for call in calls:
                self._check()
                result = await self._call_tool(writer, call)
                chat.append({"role": "tool", "tool_call_id": call.id, "content": orjson.dumps(result).decode()})

    async def _produce(self, stream: AsyncGenerator[Chunk, None], queue: asyncio.Queue[_Item]) -> None:
        try:
            async for chunk in stream:
                queue.put_nowait(chunk)
            queue.put_nowait(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
            queue.put_nowait(error)
        finally:
            await stream.aclose()

    async def _turn(self, writer: ReplyWriter, chat: list[dict[str, Any]], offered: list[dict[str, Any]]) -> tuple[list[ToolCall], str]:
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._queue = queue
        producer = self._producer = asyncio.create_task(
            self._produce(self.runtime.provider.stream(chat, offered), queue)
        )
        calls: list[ToolCall] = []
        usage: Usage | None = None
        parts: list[str] = []
        prompt_estimate = estimate_tokens(orjson.dumps(chat).decode())
        try:
            self._check()
            while True:
                if writer.pending:
                    wait = writer.due - time.monotonic()
                    if wait <= 0:
                        await writer.flush()
                        continue
                else:
                    wait = CANCEL_POLL_SECONDS
                try:
                    async with asyncio.timeout(wait):
                        item = await queue.get()
                except TimeoutError:
                    if not writer.pending:
                        await writer.check()
                    continue
                self._check()
                if item is _END:
                    break
                if item is _WAKE:
                    continue
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, TextChunk):
                    parts.append(item.text)
                    writer.add(item.text)
                    if writer.due <= time.monotonic():
                        await writer.flush()
                elif isinstance(item, ToolCall):
                    calls.append(item)
                elif isinstance(item, Usage):
                    usage = item
            await writer.flush()
        finally:
            self._producer, self._queue = None, None
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            writer.count(usage, prompt_estimate, "".join(parts), calls)
        return calls, "".join(parts)

    async def _call_tool(self, writer: ReplyWriter, call: ToolCall) -> dict[str, Any]:
        # A tool acts as the asker: never with a credential that has ended, even when its
        # signal was lost (the nudge is best effort; the key's row is not).
        if not await credential.key_still_valid(self.ctx):
            self.stop(credential.KEY_REVOKED)
        self._check()
        try:
            parsed: object = orjson.loads(call.arguments or "{}")
        except orjson.JSONDecodeError:
            parsed = None
        # Recorded as an object (the API's NoraMessage.toolArguments and ToolCallStarted say
        # so): arguments that are not one are kept as their text.
        tool = await writer.tool_started(call, parsed if isinstance(parsed, dict) else None)
        self._check()  # the session may have ended while the call was being recorded
        # Each call sees the user's current memberships and fresh loaders.
        ctx = dataclasses.replace(self.ctx, access=Access(self.ctx.access.principal), loaders=Loaders())
        result: dict[str, Any]
        try:
            if parsed is None:
                raise BadInput("The tool arguments were not valid JSON", field="arguments")
            result = {"ok": True, "result": await tools.run(ctx, self.conversation, call.name, parsed)}
        except AppError as error:
            result = {"ok": False, "error": {"code": error.code, "message": error.message, **error.extensions}}
        except Exception:
            log.exception("NORA tool %s failed", call.name)
            result = {"ok": False, "error": {"code": "INTERNAL_ERROR", "message": "The tool failed unexpectedly"}}
        await writer.tool_finished(tool, result)
        return result


# -- the chat sent to the provider ---------------------------------------------------------------


async def build_chat(conversation: NoraConversation, reply: NoraMessage, user: User) -> list[dict[str, Any]]:
    rows = list(reversed(
        await NoraMessage.filter(conversation_id=conversation.id, id__lt=reply.id).order_by("-id").limit(HISTORY_LIMIT)
    ))
    tool_rows: dict[int, list[NoraMessage]] = defaultdict(list)
    for row in rows:
        # A tool row answers the assistant message that called it (reply_to_id, always set
        # when it is written); one without would be listed under no message anyway.
        if row.role is NoraRole.TOOL and row.tool_call_id and row.reply_to_id is not None:
            tool_rows[row.reply_to_id].append(row)
    chat: list[dict[str, Any]] = [{"role": "system", "content": await _system_prompt(conversation, user)}]
    for row in rows:
        if row.role is NoraRole.USER:
            chat.append({"role": "user", "content": row.content})
        elif row.role is NoraRole.ASSISTANT:
            calls = tool_rows.get(row.id, [])
            if calls:
                chat.append({"role": "assistant", "content": None, "tool_calls": [
                    {"id": t.tool_call_id, "type": "function",
                     "function": {"name": t.tool_name, "arguments": orjson.dumps(t.tool_arguments or {}).decode()}}
                    for t in calls
                ]})
                for t in calls:
                    result = t.tool_result or {"ok": False, "error": {"code": "INTERRUPTED"}}
                    chat.append({"role": "tool", "tool_call_id": t.tool_call_id, "content": orjson.dumps(result).decode()})
            if row.content:
                chat.append({"role": "assistant", "content": row.content})
    return chat


async def _system_prompt(conversation: NoraConversation, user: User) -> str:
    org = await Organization.get(id=conversation.organization_id)
    project = await Project.get_or_none(id=conversation.project_id) if conversation.project_id else None
    scope = f'the project "{project.name}"' if project else f'the projects of the organization "{org.name}"'
    today = datetime.now(UTC).date().isoformat()
    return (
        f"You are NORA, the assistant built into PCG, a project-management platform. You are "
        f"helping {user.name} with {scope}. Use the tools to look at or change tasks; never "
        f"invent tasks or IDs. Every change is made as {user.name}, with their permissions: when "
        f"a tool answers FORBIDDEN, say that their role does not allow it. Today is {today} (UTC). "
        f"Answer briefly, in plain text."
    )
