//! The supervisor actor of a run: it owns the engine, starts the six role actors linked to
//! itself, drives the stages, and tears everything down at the end whatever happened.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::engine::{Checkpoint, Engine, EngineError, Outcome};

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// Run (or resume) the run and reply with how it ended.
    Drive(RpcReplyPort<Result<Outcome, EngineError>>),
}

/// Start arguments: the engine, a checkpoint when resuming, whether setup keys are used.
pub struct SupervisorArgs {
    /// The engine.
    pub engine: Engine,
    /// Resume from here.
    pub resume: Option<Checkpoint>,
    /// Use `orchestrate setup`'s keys.
    pub setup_keys: bool,
}

/// The supervisor actor.
pub struct RunSupervisor;

impl Actor for RunSupervisor {
    type Msg = SupervisorMsg;
    type State = Option<SupervisorArgs>;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Some(args))
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisorMsg::Drive(reply) = msg;
        let Some(args) = state.take() else {
            return Ok(());
        };
        let SupervisorArgs {
            mut engine,
            resume,
            setup_keys,
        } = args;
        let result = drive(&mut engine, resume, setup_keys, myself.get_cell()).await;
        engine.stop_roles();
        let _ = reply.send(result);
        myself.stop(None);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A role actor that fails has already answered its pending call with a fault (or the
        // call saw the actor die): the engine turned that into STOP_ROLE_CRASHED. Nothing is
        // restarted: a crashed role ends the run.
        if let SupervisionEvent::ActorFailed(who, err) = event {
            tracing::warn!(actor = ?who.get_name(), %err, "role actor failed");
        }
        Ok(())
    }
}

async fn drive(
    engine: &mut Engine,
    resume: Option<Checkpoint>,
    setup_keys: bool,
    cell: ractor::ActorCell,
) -> Result<Outcome, EngineError> {
    let keys = engine.prepare_keys(setup_keys)?;
    let tip = resume
        .as_ref()
        .and_then(|c| c.head.clone())
        .unwrap_or_else(|| engine.base.clone());
    engine.prepare_worktree(&tip)?;
    engine.start_roles(&keys, cell).await?;
    engine.execute(resume).await
}
