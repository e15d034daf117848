//! Codegen with the replay driver: every step goes to the orchestrator as a tool call first; a
//! refused call ends the iteration without applying anything more. A codegen task for the `llm`
//! driver is handed to its tool loop ([`crate::drivers::llm`]), which announces its calls the same
//! way.

use protocol::frame::{
    ChangeReady, Log, LogLevel, Message, MessageKind, Review, ToolCall, MAX_FRAME_BYTES,
};

use super::input::CodegenInput;
use crate::drivers::replay::{self, Misbehaviour, Step};
use crate::transport::{Transport, TransportError};

/// Errors of one codegen task.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// The session could not be loaded or applied.
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    /// The llm driver failed.
    #[error("llm driver: {0}")]
    Llm(#[from] crate::drivers::llm::LlmError),
    /// The frame socket failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The orchestrator answered a tool call with something else.
    #[error("expected a tool_result for call {call_id}, got {kind}")]
    UnexpectedReply {
        /// The call.
        call_id: u64,
        /// What came.
        kind: MessageKind,
    },
    /// The socket closed while waiting for a tool result.
    #[error("the orchestrator closed the socket while call {call_id} waited for its result")]
    Closed {
        /// The call.
        call_id: u64,
    },
    /// Writing raw bytes failed.
    #[error("writing raw bytes on the frame socket: {0}")]
    Raw(#[source] std::io::Error),
}

/// Runs iteration `iteration` of the session (or of the `llm` driver's tool loop when the input
/// carries one); `next_call` numbers tool calls across the run.
pub fn iterate(
    t: &mut Transport,
    input: &CodegenInput,
    iteration: u32,
    next_call: &mut u64,
) -> Result<(), CodegenError> {
    if let Some(l) = &input.llm {
        crate::drivers::llm::iterate(t, &input.worktree, l, iteration, next_call)?;
        return Ok(());
    }
    let session = replay::load(&input.session)?;
    let Some(it) = session.iteration(iteration) else {
        t.send(
            Message::ChangeReady(ChangeReady {
                iteration,
                files: vec![],
                summary: "REPLAY: empty session".into(),
            }),
            None,
        )?;
        return Ok(());
    };
    log(
        t,
        format!(
            "REPLAY of a recorded session ({}), iteration {iteration}: {}",
            session.fr_id, it.summary
        ),
    )?;
    let mut files = Vec::new();
    for step in &it.steps {
        if let Step::Misbehave { act } = step {
            misbehave(t, *act)?;
            continue;
        }
        if let Step::Probe { act, target } = step {
            // Not announced as a tool call: a hostile agent would not ask.
            log(t, crate::drivers::probe::attempt(*act, target))?;
            continue;
        }
        let (tool, args) = step.as_tool_call();
        let call_id = *next_call;
        *next_call += 1;
        t.send(
            Message::ToolCall(ToolCall {
                call_id,
                tool,
                args,
            }),
            None,
        )?;
        let reply = t.recv()?.ok_or(CodegenError::Closed { call_id })?;
        match reply.body {
            Message::ToolResult(r) if r.call_id == call_id => {
                if !r.allowed {
                    eprintln!(
                        "codegen: tool call {call_id} refused ({:?}); stopping the replay",
                        r.stop
                    );
                    return Ok(());
                }
            }
            Message::Shutdown(_) => return Ok(()),
            other => {
                return Err(CodegenError::UnexpectedReply {
                    call_id,
                    kind: other.kind(),
                })
            }
        }
        step.apply(&input.worktree)?;
        if let Some(p) = step.path() {
            if !files.iter().any(|f: &String| f == p) {
                files.push(p.to_owned());
            }
        }
    }
    t.send(
        Message::ChangeReady(ChangeReady {
            iteration,
            files,
            summary: format!("REPLAY: {}", it.summary),
        }),
        None,
    )?;
    Ok(())
}

fn log(t: &mut Transport, message: String) -> Result<(), TransportError> {
    eprintln!("codegen: {message}");
    t.send(
        Message::Log(Log {
            level: LogLevel::Info,
            message,
        }),
        None,
    )
}

fn misbehave(t: &mut Transport, act: Misbehaviour) -> Result<(), CodegenError> {
    eprintln!("codegen: REPLAY of recorded misbehaviour: {act:?}");
    match act {
        Misbehaviour::ForbiddenMessage => {
            t.send(
                Message::Review(Review {
                    iteration: 1,
                    commit: "0".repeat(40),
                    findings: vec![],
                }),
                None,
            )?;
        }
        Misbehaviour::Crash => std::process::exit(70),
        Misbehaviour::GarbageFrame => {
            let body = b"{this is not json";
            let mut bytes = u32::try_from(body.len())
                .unwrap_or(0)
                .to_be_bytes()
                .to_vec();
            bytes.extend_from_slice(body);
            t.send_raw(&bytes).map_err(CodegenError::Raw)?;
        }
        Misbehaviour::OversizedFrame => {
            let len = u32::try_from(MAX_FRAME_BYTES * 4).unwrap_or(u32::MAX);
            t.send_raw(&len.to_be_bytes()).map_err(CodegenError::Raw)?;
            t.send_raw(&vec![b' '; 4096]).map_err(CodegenError::Raw)?;
        }
        Misbehaviour::Flood => {
            for i in 0..1_000_000u64 {
                t.send(
                    Message::Log(Log {
                        level: LogLevel::Debug,
                        message: format!("flood {i}"),
                    }),
                    None,
                )?;
            }
        }
        Misbehaviour::Hang => std::thread::sleep(std::time::Duration::from_secs(3600)),
    }
    Ok(())
}
