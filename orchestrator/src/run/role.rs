//! One actor per role: it owns the role's process and its end of the frame socket, sends tasks,
//! and reads frames back until the role's result arrives. On the way it enforces the routing
//! policy: only the kinds roles.yaml lets this role send, frames of this run and role in
//! sequence, a bounded number of frames per task, every tool call counted against the plan's cap
//! and refused once a stop is requested. Any violation ends the task with a stop code; the
//! engine stops the run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol::artifact::DsseEnvelope;
use protocol::frame::{
    decode_body, try_encode, BudgetEvent, Envelope, Message, MessageKind, Task, ToolCall,
    ToolResult, MAX_FRAME_BYTES,
};
use protocol::roles::RolePolicy;
use protocol::{RoleName, StopCode};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::time::Instant;

use super::launch::RoleProcess;

/// Most frames a role may send for one task before it is cut off as flooding.
pub const MAX_FRAMES_PER_TASK: u32 = 10_000;

/// What every role actor of a run shares with the engine.
#[derive(Debug)]
pub struct Shared {
    /// Tool calls accepted so far (all roles).
    pub tool_calls: AtomicU32,
    /// The plan's tool-call cap (u32::MAX before the plan exists).
    pub tool_call_cap: AtomicU32,
    /// Present when a human asked the run to stop.
    pub stop_file: PathBuf,
    /// The run's wall-clock deadline.
    pub deadline: Instant,
}

/// A tool call as the audit trail records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CallRecord {
    /// The call.
    pub call: ToolCall,
    /// Whether it was allowed.
    pub allowed: bool,
}

/// A role's result for one task.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The result message.
    pub body: Message,
    /// Its signed artifact, if the role sent one.
    pub artifact: Option<DsseEnvelope>,
    /// Budget events sent before the result.
    pub budget_events: Vec<BudgetEvent>,
    /// Log lines sent.
    pub logs: Vec<String>,
    /// Tool calls made.
    pub calls: Vec<CallRecord>,
}

/// Why a task ended without a result: the stop code and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The stop code.
    pub code: StopCode,
    /// What happened.
    pub detail: String,
    /// Tool calls made before the fault.
    pub calls: Vec<CallRecord>,
}

impl Fault {
    fn new(code: StopCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            calls: Vec::new(),
        }
    }
}

/// Messages of a role actor.
pub enum RoleMsg {
    /// Send a task and wait for the result kind.
    Call(Box<Task>, MessageKind, RpcReplyPort<Result<Reply, Fault>>),
    /// Kill the process now.
    Kill,
}

/// Start arguments of a role actor.
pub struct RoleArgs {
    /// The role.
    pub role: RoleName,
    /// The run.
    pub run_id: String,
    /// Its policy.
    pub policy: RolePolicy,
    /// The started process.
    pub process: RoleProcess,
    /// The orchestrator's end of the socket.
    pub socket: std::os::unix::net::UnixStream,
    /// Shared counters.
    pub shared: Arc<Shared>,
}

/// The actor's state.
pub struct RoleState {
    role: RoleName,
    run_id: String,
    policy: RolePolicy,
    process: RoleProcess,
    stream: Option<UnixStream>,
    shared: Arc<Shared>,
    seq_out: u64,
    seq_in: u64,
    task_wall: Duration,
}

/// The role actor.
pub struct RoleActor;

impl Actor for RoleActor {
    type Msg = RoleMsg;
    type State = RoleState;
    type Arguments = RoleArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: RoleArgs,
    ) -> Result<RoleState, ActorProcessingErr> {
        args.socket.set_nonblocking(true)?;
        let stream = UnixStream::from_std(args.socket)?;
        let task_wall = Duration::from_secs(args.policy.limits.wall_seconds);
        Ok(RoleState {
            role: args.role,
            run_id: args.run_id,
            policy: args.policy,
            process: args.process,
            stream: Some(stream),
            shared: args.shared,
            seq_out: 0,
            seq_in: 0,
            task_wall,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: RoleMsg,
        state: &mut RoleState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RoleMsg::Call(task, want, reply) => {
                let result = call(state, *task, want).await;
                if result.is_err() {
                    // Cut off: a role that violated the protocol gets nothing more.
                    state.stream = None;
                    state.process.kill();
                }
                let _ = reply.send(result);
            }
            RoleMsg::Kill => {
                state.stream = None;
                state.process.kill();
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut RoleState,
    ) -> Result<(), ActorProcessingErr> {
        state.stream = None;
        state.process.kill();
        Ok(())
    }
}

async fn send(state: &mut RoleState, body: Message) -> Result<(), Fault> {
    let env = Envelope::new(state.run_id.clone(), state.role, state.seq_out, body);
    state.seq_out += 1;
    let bytes = try_encode(&env).map_err(|e| {
        Fault::new(
            StopCode::ProtocolViolation,
            format!("encoding a frame: {e}"),
        )
    })?;
    let stream = state
        .stream
        .as_mut()
        .ok_or_else(|| Fault::new(StopCode::RoleCrashed, "role was cut off"))?;
    stream.write_all(&bytes).await.map_err(|e| {
        Fault::new(
            StopCode::RoleCrashed,
            format!("{}: writing to the role failed: {e}", state.role),
        )
    })
}

/// Reads one frame; `None` on a clean end of stream.
async fn recv(stream: &mut UnixStream) -> Result<Option<Envelope>, Fault> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => {
            return Err(Fault::new(
                StopCode::RoleCrashed,
                format!("reading from the role: {e}"),
            ))
        }
    }
    let len = usize::try_from(u32::from_be_bytes(header)).unwrap_or(usize::MAX);
    if len > MAX_FRAME_BYTES {
        return Err(Fault::new(
            StopCode::ProtocolViolation,
            format!("oversized frame: header announces {len} bytes, limit {MAX_FRAME_BYTES}"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(|e| {
        Fault::new(
            StopCode::ProtocolViolation,
            format!("truncated frame of {len} bytes: {e}"),
        )
    })?;
    decode_body(&body)
        .map(Some)
        .map_err(|e| Fault::new(StopCode::ProtocolViolation, format!("malformed frame: {e}")))
}

/// What waiting for a frame ended with.
enum Watch {
    /// A frame, the end of the stream, or a broken frame.
    Frame(Box<Result<Option<Envelope>, Fault>>),
    /// A person asked the run to stop.
    Stop,
    /// The deadline passed.
    Deadline,
}

/// Waits for the next frame while checking, four times a second, whether a stop was requested
/// or the deadline passed. The read is never cancelled halfway through a frame except to end
/// the role's socket for good.
async fn recv_watching(
    stream: &mut UnixStream,
    deadline: Instant,
    stop_file: &std::path::Path,
) -> Watch {
    let read = recv(stream);
    tokio::pin!(read);
    loop {
        let tick = (Instant::now() + Duration::from_millis(250)).min(deadline);
        tokio::select! {
            r = &mut read => return Watch::Frame(Box::new(r)),
            () = tokio::time::sleep_until(tick) => {
                if stop_file.exists() {
                    return Watch::Stop;
                }
                if Instant::now() >= deadline {
                    return Watch::Deadline;
                }
            }
        }
    }
}

async fn call(state: &mut RoleState, task: Task, want: MessageKind) -> Result<Reply, Fault> {
    let role = state.role;
    send(state, Message::Task(task)).await?;
    let task_deadline = Instant::now() + state.task_wall;
    let run_deadline = state.shared.deadline;
    let deadline = task_deadline.min(run_deadline);
    let mut reply = Reply {
        body: Message::Log(protocol::frame::Log {
            level: protocol::frame::LogLevel::Info,
            message: String::new(),
        }),
        artifact: None,
        budget_events: Vec::new(),
        logs: Vec::new(),
        calls: Vec::new(),
    };
    let mut frames = 0u32;
    loop {
        let stream = state
            .stream
            .as_mut()
            .ok_or_else(|| Fault::new(StopCode::RoleCrashed, "role was cut off"))?;
        let next = match recv_watching(stream, deadline, &state.shared.stop_file).await {
            Watch::Frame(r) => (*r)?,
            Watch::Stop => {
                return Err(Fault::new(
                    StopCode::Human,
                    format!("a person asked the run to stop while {role} worked"),
                ))
            }
            Watch::Deadline => {
                return Err(if deadline == run_deadline {
                    Fault::new(
                        StopCode::RuntimeExceeded,
                        format!("the run's wall-clock ceiling passed while {role} worked"),
                    )
                } else {
                    Fault::new(
                        StopCode::RoleCrashed,
                        format!(
                            "{role} hung: no result within its wall limit of {} s",
                            state.task_wall.as_secs()
                        ),
                    )
                });
            }
        };
        let Some(env) = next else {
            let status = state.process.child.try_wait().ok().flatten();
            if status.is_some() {
                state.process.record_jail_report();
            }
            return Err(Fault::new(
                StopCode::RoleCrashed,
                format!(
                    "{role} exited without its result ({})",
                    status.map_or("still running".to_owned(), |s| s.to_string())
                ),
            ));
        };
        frames += 1;
        if frames > MAX_FRAMES_PER_TASK {
            return Err(Fault::new(
                StopCode::ProtocolViolation,
                format!("{role} flooded the socket: more than {MAX_FRAMES_PER_TASK} frames for one task"),
            ));
        }
        if env.run_id != state.run_id || env.role != role || env.seq != state.seq_in {
            return Err(Fault::new(
                StopCode::ProtocolViolation,
                format!(
                    "frame claims run {} role {} seq {}, expected run {} role {role} seq {}",
                    env.run_id, env.role, env.seq, state.run_id, state.seq_in
                ),
            ));
        }
        state.seq_in += 1;
        let kind = env.body.kind();
        if kind.is_from_orchestrator() || !state.policy.may_send(kind) {
            return Err(Fault::new(
                StopCode::ForbiddenMessage,
                format!(
                    "{role} sent a `{kind}` message; roles.yaml allows it only {:?}",
                    state.policy.messages
                ),
            ));
        }
        match env.body {
            Message::Log(l) => reply.logs.push(l.message),
            Message::BudgetEvent(e) => reply.budget_events.push(e),
            Message::ToolCall(c) => {
                let (allowed, stop) = admit(&state.shared);
                let result = ToolResult {
                    call_id: c.call_id,
                    allowed,
                    stop,
                    output: serde_json::Value::Null,
                };
                reply.calls.push(CallRecord { call: c, allowed });
                send(state, Message::ToolResult(result)).await?;
                if let Some(code) = stop {
                    let mut f = Fault::new(code, stop_detail(code, &state.shared));
                    f.calls = reply.calls;
                    return Err(f);
                }
            }
            body if body.kind() == want => {
                reply.body = body;
                reply.artifact = env.artifact;
                return Ok(reply);
            }
            other => {
                return Err(Fault::new(
                    StopCode::ProtocolViolation,
                    format!(
                        "{role} answered a task with `{}` instead of `{want}`",
                        other.kind()
                    ),
                ));
            }
        }
    }
}

/// Whether one more tool call may proceed: no stop requested, cap not reached, deadline ahead.
fn admit(shared: &Shared) -> (bool, Option<StopCode>) {
    if shared.stop_file.exists() {
        return (false, Some(StopCode::Human));
    }
    if Instant::now() >= shared.deadline {
        return (false, Some(StopCode::RuntimeExceeded));
    }
    let cap = shared.tool_call_cap.load(Ordering::SeqCst);
    let n = shared.tool_calls.fetch_add(1, Ordering::SeqCst) + 1;
    if n > cap {
        return (false, Some(StopCode::ToolCallCap));
    }
    (true, None)
}

fn stop_detail(code: StopCode, shared: &Shared) -> String {
    match code {
        StopCode::ToolCallCap => format!(
            "tool call {} refused: the plan allows {}",
            shared.tool_calls.load(Ordering::SeqCst),
            shared.tool_call_cap.load(Ordering::SeqCst)
        ),
        StopCode::Human => "a person asked the run to stop (orchestrate stop)".to_owned(),
        other => other.description().to_owned(),
    }
}
