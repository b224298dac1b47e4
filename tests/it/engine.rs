//! The deployment engine at its failure points (bars F1–F4, F7, F8, F11), against `FakeAws`: an
//! in-memory, scriptable STS + CloudFormation that records every call. The portal side is real:
//! a fresh SQLite file, the demo account registry, a request submitted and approved through the
//! library's own functions, and `Worker::run_once` driven step by step. No IdP, no emulator.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use stackgate::AppState;
use stackgate::approvals::{self, Decision};
use stackgate::audit::Record;
use stackgate::aws::{
    AssumeSpec, ChangeSetInput, ChangeSetKind, ChangeSetState, DeployError, ResourceChange,
    StackEvent, StackOps, StackState,
};
use stackgate::db::{Db, now_ms};
use stackgate::deployments::{self, Deployment, DeploymentStatus, Step};
use stackgate::requests::input::NewRequest;
use stackgate::requests::{self, RequestStatus, ServiceRequest};
use stackgate::web::{CurrentUser, Roles};
use stackgate::worker::{Connect, Worker};
use tokio::sync::Notify;

use crate::support::{repo, test_config};

const DEV: &str = "200000000001";
const REGION: &str = "eu-west-2";

// ---------------------------------------------------------------------------------------------
// FakeAws: the scriptable STS + CloudFormation.
// ---------------------------------------------------------------------------------------------

/// The AWS operations the engine can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    AssumeRole,
    CreateChangeSet,
    DescribeChangeSet,
    ExecuteChangeSet,
    DescribeStack,
    StackEvents,
    DeleteStack,
}

impl Op {
    fn mutating(self) -> bool {
        matches!(
            self,
            Op::CreateChangeSet | Op::ExecuteChangeSet | Op::DeleteStack
        )
    }
}

/// One call as the fake saw it.
#[derive(Debug, Clone)]
struct Call {
    op: Op,
    stack: Option<String>,
    /// The change-set name (CreateChangeSet) or the identifier sent (Describe/Execute).
    change_set: Option<String>,
    token: Option<String>,
    kind: Option<ChangeSetKind>,
    spec: Option<AssumeSpec>,
    /// Whether the call changed the fake's state (for mutating calls).
    applied: bool,
    /// What the caller was told: `ok`, or the error.
    answer: Option<String>,
}

impl Call {
    fn new(op: Op) -> Call {
        Call {
            op,
            stack: None,
            change_set: None,
            token: None,
            kind: None,
            spec: None,
            applied: false,
            answer: None,
        }
    }
}

/// How one stack operation ends when its change set is executed.
#[derive(Debug, Clone)]
enum ExecPlan {
    Succeed,
    /// A resource fails; CloudFormation rolls back cleanly (`ROLLBACK_COMPLETE` for a create).
    RollBack {
        resource: String,
        reason: String,
    },
    /// An update fails and so does its rollback (`UPDATE_ROLLBACK_FAILED`).
    UpdateRollbackFailed {
        resource: String,
        reason: String,
    },
}

/// What a script rule does to a call.
enum Action {
    /// Answer this error; nothing is applied.
    Fail(DeployError),
    /// Apply the call, then lose the answer: the caller sees `Transient`.
    ApplyThenDrop,
    /// Never answer (the process dies in the call when its future is dropped); `apply` says
    /// whether the call reached AWS first. `reached` is notified when the call hangs.
    Hang { apply: bool, reached: Arc<Notify> },
    /// Stop before the call until `release`; `reached` is notified when it stops.
    Pause {
        reached: Arc<Notify>,
        release: Arc<Notify>,
    },
    /// Change the world (someone else acting on AWS) before the call runs normally.
    Mutate(Box<dyn FnMut(&mut World) + Send>),
}

/// A scripted fault: the first `skip` calls of `op` pass, then `times` calls (None: all) get
/// `action`.
struct Rule {
    op: Op,
    skip: usize,
    times: Option<usize>,
    action: Action,
}

/// The owned part of an action, taken out of the script for one call.
enum Planned {
    Fail(DeployError),
    ApplyThenDrop,
    Hang {
        apply: bool,
        reached: Arc<Notify>,
    },
    Pause {
        reached: Arc<Notify>,
        release: Arc<Notify>,
    },
}

#[derive(Debug, Clone)]
struct FakeStack {
    id: String,
    status: String,
    reason: Option<String>,
    outputs: Vec<(String, String, Option<String>)>,
    tags: Vec<(String, String)>,
    /// Oldest first.
    events: Vec<StackEvent>,
    /// Stages still to come, one per DescribeStacks.
    pending: VecDeque<Stage>,
    /// The ClientRequestToken of the operation in progress.
    token: Option<String>,
}

#[derive(Debug, Clone)]
struct FakeChangeSet {
    arn: String,
    name: String,
    stack: String,
    kind: ChangeSetKind,
    token: String,
    status: String,
    execution_status: String,
    /// DescribeChangeSet calls still answered CREATE_IN_PROGRESS.
    describes_left: usize,
    changes: Vec<ResourceChange>,
    tags: Vec<(String, String)>,
    /// CloudFormation removes a stack's other change sets when one is executed.
    deleted: bool,
}

#[derive(Debug, Clone)]
struct Ev {
    logical_id: String,
    resource_type: String,
    status: String,
    reason: Option<String>,
}

fn ev(logical_id: &str, resource_type: &str, status: &str, reason: Option<&str>) -> Ev {
    Ev {
        logical_id: logical_id.into(),
        resource_type: resource_type.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
    }
}

/// One step of a stack operation, applied at one DescribeStacks.
#[derive(Debug, Clone)]
struct Stage {
    status: String,
    reason: Option<String>,
    events: Vec<Ev>,
    outputs: Option<Vec<(String, String, Option<String>)>>,
    change_set_execution: Option<&'static str>,
}

/// CloudFormation's side: stacks, change sets, executions.
struct World {
    stacks: BTreeMap<String, FakeStack>,
    change_sets: Vec<FakeChangeSet>,
    /// (change-set ARN, ClientRequestToken) of every applied ExecuteChangeSet.
    executions: Vec<(String, String)>,
    plan: ExecPlan,
    /// How many DescribeChangeSet calls a new change set answers CREATE_IN_PROGRESS.
    change_set_ready_after: usize,
    clock0: DateTime<Utc>,
    tick: i64,
}

const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

fn valid_token(t: &str) -> bool {
    (1..=128).contains(&t.len())
        && t.as_bytes()[0].is_ascii_alphanumeric()
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

fn token_error(t: &str) -> DeployError {
    DeployError::Other(format!(
        "ValidationError: 1 validation error detected: Value '{t}' at 'clientRequestToken' failed \
         to satisfy constraint: Member must satisfy regular expression pattern: \
         [a-zA-Z0-9][-a-zA-Z0-9]*"
    ))
}

fn name_not_arn() -> DeployError {
    // What CloudFormation answers to DescribeChangeSet/ExecuteChangeSet with a bare change-set
    // name and no StackName.
    DeployError::Other(
        "ValidationError: StackName must be specified if ChangeSetName is not specified as an ARN."
            .into(),
    )
}

fn updatable(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_COMPLETE"
    )
}

impl World {
    fn new() -> World {
        World {
            stacks: BTreeMap::new(),
            change_sets: Vec::new(),
            executions: Vec::new(),
            plan: ExecPlan::Succeed,
            change_set_ready_after: 1,
            clock0: Utc::now(),
            tick: 0,
        }
    }

    fn now(&mut self) -> DateTime<Utc> {
        self.tick += 1;
        self.clock0 + chrono::Duration::milliseconds(self.tick)
    }

    fn push_events(&mut self, stack: &str, evs: &[Ev], token: Option<String>) {
        let stamped: Vec<StackEvent> = evs
            .iter()
            .map(|e| StackEvent {
                timestamp: self.now(),
                logical_id: e.logical_id.clone(),
                resource_type: e.resource_type.clone(),
                status: e.status.clone(),
                reason: e.reason.clone(),
                client_request_token: token.clone(),
            })
            .collect();
        self.stacks
            .get_mut(stack)
            .expect("stack")
            .events
            .extend(stamped);
    }

    /// A stack that exists before the test, owned by `team`, with old events (two hours ago).
    fn seed_stack(&mut self, name: &str, status: &str, team: &str) {
        let id = format!(
            "arn:aws:cloudformation:{REGION}:{DEV}:stack/{name}/{}",
            uuid::Uuid::new_v4()
        );
        let old = self.clock0 - chrono::Duration::hours(2);
        let events = [
            (
                "Vpc",
                "AWS::EC2::VPC",
                "UPDATE_FAILED",
                Some("an old failure"),
            ),
            (name, STACK_TYPE, "UPDATE_ROLLBACK_COMPLETE", None),
            (name, STACK_TYPE, status, None),
        ]
        .iter()
        .enumerate()
        .map(|(i, (l, t, s, r))| StackEvent {
            timestamp: old + chrono::Duration::seconds(i as i64),
            logical_id: l.to_string(),
            resource_type: t.to_string(),
            status: s.to_string(),
            reason: r.map(str::to_string),
            client_request_token: None,
        })
        .collect();
        self.stacks.insert(
            name.to_string(),
            FakeStack {
                id,
                status: status.into(),
                reason: None,
                outputs: vec![("VpcId".into(), "vpc-0old".into(), None)],
                tags: vec![("stackgate:team".into(), team.into())],
                events,
                pending: VecDeque::new(),
                token: None,
            },
        );
    }

    fn create_change_set(
        &mut self,
        account: &str,
        region: &str,
        input: &ChangeSetInput,
    ) -> Result<String, DeployError> {
        if !valid_token(&input.client_token) {
            return Err(token_error(&input.client_token));
        }
        if let Some(cs) = self
            .change_sets
            .iter()
            .find(|c| !c.deleted && c.stack == input.stack_name && c.name == input.change_set_name)
        {
            // The same ClientToken is a retry of the same call: answer it again.
            return if cs.token == input.client_token {
                Ok(cs.arn.clone())
            } else {
                Err(DeployError::AlreadyExists(format!(
                    "AlreadyExistsException: ChangeSet {} already exists",
                    input.change_set_name
                )))
            };
        }
        let template: serde_json::Value =
            serde_json::from_str(&input.template_body).map_err(|_| {
                DeployError::TemplateRejected(
                    "ValidationError: Template format error: JSON not well-formed.".into(),
                )
            })?;
        let resources: Vec<(String, String)> = template["Resources"]
            .as_object()
            .map(|r| {
                r.iter()
                    .map(|(k, v)| (k.clone(), v["Type"].as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default();
        if resources.iter().any(|(_, t)| t.starts_with("AWS::IAM::"))
            && !input
                .capabilities
                .iter()
                .any(|c| c == "CAPABILITY_IAM" || c == "CAPABILITY_NAMED_IAM")
        {
            return Err(DeployError::TemplateRejected(
                "InsufficientCapabilitiesException: Requires capabilities : [CAPABILITY_IAM]"
                    .into(),
            ));
        }
        let changes = match input.change_set_type {
            ChangeSetKind::Create => {
                match self.stacks.get(&input.stack_name) {
                    Some(s) if s.status != "REVIEW_IN_PROGRESS" => {
                        return Err(DeployError::Other(format!(
                            "ValidationError: Stack [{}] already exists and cannot be created \
                             again with the changeSet [{}].",
                            input.stack_name, input.change_set_name
                        )));
                    }
                    Some(_) => {}
                    None => {
                        let id = format!(
                            "arn:aws:cloudformation:{region}:{account}:stack/{}/{}",
                            input.stack_name,
                            uuid::Uuid::new_v4()
                        );
                        self.stacks.insert(
                            input.stack_name.clone(),
                            FakeStack {
                                id,
                                status: "REVIEW_IN_PROGRESS".into(),
                                reason: None,
                                outputs: vec![],
                                tags: vec![],
                                events: vec![],
                                pending: VecDeque::new(),
                                token: None,
                            },
                        );
                        let name = input.stack_name.clone();
                        self.push_events(
                            &name,
                            &[ev(
                                &name,
                                STACK_TYPE,
                                "REVIEW_IN_PROGRESS",
                                Some("User Initiated"),
                            )],
                            None,
                        );
                    }
                }
                resources
                    .iter()
                    .map(|(l, t)| ResourceChange {
                        logical_id: l.clone(),
                        resource_type: t.clone(),
                        action: "Add".into(),
                        replacement: None,
                    })
                    .collect()
            }
            ChangeSetKind::Update => {
                match self.stacks.get(&input.stack_name) {
                    None => {
                        return Err(DeployError::NotFound(format!(
                            "ValidationError: Stack [{}] does not exist",
                            input.stack_name
                        )));
                    }
                    Some(s) if !updatable(&s.status) => {
                        return Err(DeployError::Other(format!(
                            "ValidationError: Stack:{} is in {} state and can not be updated.",
                            s.id, s.status
                        )));
                    }
                    Some(_) => {}
                }
                vec![ResourceChange {
                    logical_id: "Vpc".into(),
                    resource_type: "AWS::EC2::VPC".into(),
                    action: "Modify".into(),
                    replacement: Some("False".into()),
                }]
            }
        };
        let arn = format!(
            "arn:aws:cloudformation:{region}:{account}:changeSet/{}/{}",
            input.change_set_name,
            uuid::Uuid::new_v4()
        );
        self.change_sets.push(FakeChangeSet {
            arn: arn.clone(),
            name: input.change_set_name.clone(),
            stack: input.stack_name.clone(),
            kind: input.change_set_type,
            token: input.client_token.clone(),
            status: "CREATE_PENDING".into(),
            execution_status: "UNAVAILABLE".into(),
            describes_left: self.change_set_ready_after,
            changes,
            tags: input.tags.clone(),
            deleted: false,
        });
        Ok(arn)
    }

    fn change_set_mut(&mut self, id: &str) -> Result<&mut FakeChangeSet, DeployError> {
        if !id.starts_with("arn:") {
            return Err(name_not_arn());
        }
        self.change_sets
            .iter_mut()
            .find(|c| c.arn == id && !c.deleted)
            .ok_or_else(|| {
                DeployError::NotFound(format!(
                    "ChangeSetNotFound: ChangeSet [{id}] does not exist"
                ))
            })
    }

    fn describe_change_set(&mut self, id: &str) -> Result<ChangeSetState, DeployError> {
        let cs = self.change_set_mut(id)?;
        if cs.status != "CREATE_COMPLETE" {
            if cs.describes_left == 0 {
                cs.status = "CREATE_COMPLETE".into();
                cs.execution_status = "AVAILABLE".into();
            } else {
                cs.describes_left -= 1;
                cs.status = "CREATE_IN_PROGRESS".into();
            }
        }
        Ok(ChangeSetState {
            status: cs.status.clone(),
            execution_status: cs.execution_status.clone(),
            status_reason: None,
            changes: cs.changes.clone(),
        })
    }

    /// Someone else updated the stack: its AVAILABLE change sets are now OBSOLETE.
    fn foreign_update(&mut self, stack: &str) {
        for cs in self.change_sets.iter_mut().filter(|c| c.stack == stack) {
            if cs.execution_status == "AVAILABLE" {
                cs.execution_status = "OBSOLETE".into();
            }
        }
    }

    fn execute(&mut self, id: &str, token: &str) -> Result<(), DeployError> {
        if !valid_token(token) {
            return Err(token_error(token));
        }
        let cs = self.change_set_mut(id)?;
        let (arn, stack, kind, tags, changes) = (
            cs.arn.clone(),
            cs.stack.clone(),
            cs.kind,
            cs.tags.clone(),
            cs.changes.clone(),
        );
        if self.executions.iter().any(|(a, t)| *a == arn && t == token) {
            return Ok(()); // a retry with the same token
        }
        let cs = self.change_set_mut(id)?;
        if cs.execution_status != "AVAILABLE" {
            return Err(DeployError::ChangeSetFailed(format!(
                "InvalidChangeSetStatus: ChangeSet [{arn}] cannot be executed in its current \
                 execution status of [{}]",
                cs.execution_status
            )));
        }
        cs.execution_status = "EXECUTE_IN_PROGRESS".into();
        self.executions.push((arn.clone(), token.to_string()));
        for other in self
            .change_sets
            .iter_mut()
            .filter(|c| c.stack == stack && c.arn != arn)
        {
            other.deleted = true;
        }
        let verb = match kind {
            ChangeSetKind::Create => "CREATE",
            ChangeSetKind::Update => "UPDATE",
        };
        let first = &changes[0];
        let (l, t) = (first.logical_id.as_str(), first.resource_type.as_str());
        let second = changes.get(1).unwrap_or(first);
        let (l2, t2) = (second.logical_id.as_str(), second.resource_type.as_str());
        let in_progress = format!("{verb}_IN_PROGRESS");
        let stages = match self.plan.clone() {
            ExecPlan::Succeed => {
                let mut stages = vec![Stage {
                    status: in_progress.clone(),
                    reason: None,
                    events: vec![ev(l, t, &in_progress, None), ev(l2, t2, &in_progress, None)],
                    outputs: None,
                    change_set_execution: None,
                }];
                if kind == ChangeSetKind::Update {
                    stages.push(Stage {
                        status: "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS".into(),
                        reason: None,
                        events: vec![ev(l, t, "UPDATE_COMPLETE", None)],
                        outputs: None,
                        change_set_execution: None,
                    });
                }
                let done = format!("{verb}_COMPLETE");
                stages.push(Stage {
                    status: done.clone(),
                    reason: None,
                    events: vec![
                        ev(l, t, &done, None),
                        ev(l2, t2, &done, None),
                        ev(&stack, STACK_TYPE, &done, None),
                    ],
                    outputs: Some(vec![
                        (
                            "VpcId".into(),
                            "vpc-0fake1234".into(),
                            Some("The VPC".into()),
                        ),
                        ("PublicSubnetIds".into(), "subnet-0a,subnet-0b".into(), None),
                    ]),
                    change_set_execution: Some("EXECUTE_COMPLETE"),
                });
                stages
            }
            ExecPlan::RollBack { resource, reason } => {
                let rolling = if kind == ChangeSetKind::Create {
                    "ROLLBACK"
                } else {
                    "UPDATE_ROLLBACK"
                };
                let failed_to = format!(
                    "The following resource(s) failed to {}: [{l2}, {resource}]. Rollback \
                     requested by user.",
                    verb.to_lowercase()
                );
                vec![
                    Stage {
                        status: in_progress.clone(),
                        reason: None,
                        events: vec![
                            ev(&resource, "AWS::IAM::Role", &in_progress, None),
                            ev(l2, t2, &in_progress, None),
                        ],
                        outputs: None,
                        change_set_execution: None,
                    },
                    Stage {
                        status: format!("{rolling}_IN_PROGRESS"),
                        reason: Some(failed_to.clone()),
                        events: vec![
                            ev(
                                &resource,
                                "AWS::IAM::Role",
                                &format!("{verb}_FAILED"),
                                Some(&reason),
                            ),
                            ev(
                                l2,
                                t2,
                                &format!("{verb}_FAILED"),
                                Some("Resource creation cancelled"),
                            ),
                            ev(
                                &stack,
                                STACK_TYPE,
                                &format!("{rolling}_IN_PROGRESS"),
                                Some(&failed_to),
                            ),
                        ],
                        outputs: None,
                        change_set_execution: None,
                    },
                    Stage {
                        status: format!("{rolling}_COMPLETE"),
                        reason: None,
                        events: vec![
                            ev(&resource, "AWS::IAM::Role", "DELETE_COMPLETE", None),
                            ev(l2, t2, "DELETE_COMPLETE", None),
                            ev(&stack, STACK_TYPE, &format!("{rolling}_COMPLETE"), None),
                        ],
                        outputs: None,
                        change_set_execution: Some("EXECUTE_FAILED"),
                    },
                ]
            }
            ExecPlan::UpdateRollbackFailed { resource, reason } => {
                let failed_to =
                    format!("The following resource(s) failed to update: [{resource}].");
                vec![
                    Stage {
                        status: in_progress.clone(),
                        reason: None,
                        events: vec![ev(&resource, "AWS::EC2::VPC", &in_progress, None)],
                        outputs: None,
                        change_set_execution: None,
                    },
                    Stage {
                        status: "UPDATE_ROLLBACK_IN_PROGRESS".into(),
                        reason: Some(failed_to.clone()),
                        events: vec![
                            ev(&resource, "AWS::EC2::VPC", "UPDATE_FAILED", Some(&reason)),
                            ev(
                                &stack,
                                STACK_TYPE,
                                "UPDATE_ROLLBACK_IN_PROGRESS",
                                Some(&failed_to),
                            ),
                        ],
                        outputs: None,
                        change_set_execution: None,
                    },
                    Stage {
                        status: "UPDATE_ROLLBACK_FAILED".into(),
                        reason: Some(failed_to.clone()),
                        events: vec![
                            ev(
                                &resource,
                                "AWS::EC2::VPC",
                                "UPDATE_FAILED",
                                Some(
                                    "Resource handler returned message: rollback could not restore the resource",
                                ),
                            ),
                            ev(
                                &stack,
                                STACK_TYPE,
                                "UPDATE_ROLLBACK_FAILED",
                                Some(&failed_to),
                            ),
                        ],
                        outputs: None,
                        change_set_execution: Some("EXECUTE_FAILED"),
                    },
                ]
            }
        };
        let s = self.stacks.get_mut(&stack).expect("the change set's stack");
        s.status = in_progress.clone();
        s.reason = Some("User Initiated".into());
        s.tags = tags;
        s.token = Some(token.to_string());
        s.pending = stages.into();
        self.push_events(
            &stack,
            &[ev(&stack, STACK_TYPE, &in_progress, Some("User Initiated"))],
            Some(token.to_string()),
        );
        Ok(())
    }

    fn describe_stack(&mut self, name: &str) -> Option<StackState> {
        let stage = self.stacks.get_mut(name)?.pending.pop_front();
        if let Some(stage) = stage {
            let token = self.stacks[name].token.clone();
            self.push_events(name, &stage.events, token);
            let s = self.stacks.get_mut(name).expect("stack");
            s.status = stage.status;
            s.reason = stage.reason;
            if let Some(o) = stage.outputs {
                s.outputs = o;
            }
            if let Some(x) = stage.change_set_execution {
                for cs in self
                    .change_sets
                    .iter_mut()
                    .filter(|c| c.stack == name && c.execution_status == "EXECUTE_IN_PROGRESS")
                {
                    cs.execution_status = x.into();
                }
            }
        }
        let s = &self.stacks[name];
        Some(StackState {
            stack_id: s.id.clone(),
            status: s.status.clone(),
            status_reason: s.reason.clone(),
            outputs: s.outputs.clone(),
            tags: s.tags.clone(),
            role_arn: None,
        })
    }

    fn stack_events(&self, name: &str) -> Result<Vec<StackEvent>, DeployError> {
        let s = self.stacks.get(name).ok_or_else(|| {
            DeployError::NotFound(format!("ValidationError: Stack [{name}] does not exist"))
        })?;
        Ok(s.events.iter().rev().cloned().collect())
    }

    /// Change sets created for `stack` (deleted or not).
    fn change_sets_of(&self, stack: &str) -> Vec<FakeChangeSet> {
        self.change_sets
            .iter()
            .filter(|c| c.stack == stack)
            .cloned()
            .collect()
    }
}

struct Inner {
    world: World,
    calls: Vec<Call>,
    rules: Vec<Rule>,
}

impl Inner {
    /// Takes the action the script has for this call of `op`, if any. `Mutate` runs here.
    fn plan(&mut self, op: Op) -> Option<Planned> {
        let i = self.rules.iter().position(|r| r.op == op)?;
        let rule = &mut self.rules[i];
        if rule.skip > 0 {
            rule.skip -= 1;
            return None;
        }
        if let Some(t) = rule.times.as_mut() {
            *t -= 1;
        }
        let planned = match &mut rule.action {
            Action::Fail(e) => Some(Planned::Fail(e.clone())),
            Action::ApplyThenDrop => Some(Planned::ApplyThenDrop),
            Action::Hang { apply, reached } => Some(Planned::Hang {
                apply: *apply,
                reached: reached.clone(),
            }),
            Action::Pause { reached, release } => Some(Planned::Pause {
                reached: reached.clone(),
                release: release.clone(),
            }),
            Action::Mutate(f) => {
                f(&mut self.world);
                None
            }
        };
        if self.rules[i].times == Some(0) {
            self.rules.remove(i);
        }
        planned
    }
}

/// The fake's handle; clones share one state.
#[derive(Clone)]
struct FakeAws {
    inner: Arc<Mutex<Inner>>,
}

/// A CloudFormation session in one account and region, as `connect` returns it.
struct FakeSession {
    aws: FakeAws,
    account: String,
    region: String,
}

impl FakeAws {
    fn new() -> FakeAws {
        FakeAws {
            inner: Arc::new(Mutex::new(Inner {
                world: World::new(),
                calls: Vec::new(),
                rules: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn script(&self, op: Op, skip: usize, times: Option<usize>, action: Action) {
        self.lock().rules.push(Rule {
            op,
            skip,
            times,
            action,
        });
    }

    /// The next call of `op` fails with `error` (nothing applied).
    fn fail_next(&self, op: Op, error: DeployError) {
        self.script(op, 0, Some(1), Action::Fail(error));
    }

    /// Every call of `op` fails with `error`.
    fn fail_always(&self, op: Op, error: DeployError) {
        self.script(op, 0, None, Action::Fail(error));
    }

    /// The next call of `op` is applied, and its answer lost (`Transient`).
    fn drop_next_response(&self, op: Op) {
        self.script(op, 0, Some(1), Action::ApplyThenDrop);
    }

    /// The next call of `op` never answers; notified when it hangs.
    fn hang_next(&self, op: Op, apply: bool) -> Arc<Notify> {
        let reached = Arc::new(Notify::new());
        self.script(
            op,
            0,
            Some(1),
            Action::Hang {
                apply,
                reached: reached.clone(),
            },
        );
        reached
    }

    /// The call of `op` after `skip` others stops before running until released.
    fn pause_before(&self, op: Op, skip: usize) -> (Arc<Notify>, Arc<Notify>) {
        let (reached, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        self.script(
            op,
            skip,
            Some(1),
            Action::Pause {
                reached: reached.clone(),
                release: release.clone(),
            },
        );
        (reached, release)
    }

    /// Before the call of `op` after `skip` others, `f` changes the world.
    fn before(&self, op: Op, skip: usize, f: impl FnMut(&mut World) + Send + 'static) {
        self.script(op, skip, Some(1), Action::Mutate(Box::new(f)));
    }

    fn world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.lock().world)
    }

    fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn count(&self, op: Op) -> usize {
        self.calls().iter().filter(|c| c.op == op).count()
    }

    /// Runs one call: logs it, applies the script, then `apply` on the world.
    async fn call<T: Send>(
        &self,
        call: Call,
        apply: impl FnOnce(&mut World) -> Result<T, DeployError> + Send,
    ) -> Result<T, DeployError> {
        let op = call.op;
        let (idx, planned) = {
            let mut inner = self.lock();
            inner.calls.push(call);
            let idx = inner.calls.len() - 1;
            (idx, inner.plan(op))
        };
        let answer = |aws: &FakeAws, applied: bool, answer: String| {
            let mut inner = aws.lock();
            inner.calls[idx].applied = applied && op.mutating();
            inner.calls[idx].answer = Some(answer);
        };
        let mut hang_after: Option<Arc<Notify>> = None;
        let mut drop_answer = false;
        match planned {
            None => {}
            Some(Planned::Fail(e)) => {
                answer(self, false, e.to_string());
                return Err(e);
            }
            Some(Planned::Pause { reached, release }) => {
                reached.notify_one();
                release.notified().await;
            }
            Some(Planned::Hang {
                apply: false,
                reached,
            }) => {
                answer(self, false, "no answer (hung before reaching AWS)".into());
                reached.notify_one();
                return std::future::pending().await;
            }
            Some(Planned::Hang {
                apply: true,
                reached,
            }) => hang_after = Some(reached),
            Some(Planned::ApplyThenDrop) => drop_answer = true,
        }
        let result = apply(&mut self.lock().world);
        let applied = result.is_ok();
        if let Some(reached) = hang_after {
            answer(self, applied, "no answer (hung after applying)".into());
            reached.notify_one();
            return std::future::pending().await;
        }
        if drop_answer {
            let e = DeployError::Transient(format!(
                "{op:?}: dispatch failure: connection reset after the request was sent"
            ));
            answer(self, applied, format!("dropped: {e}"));
            return Err(e);
        }
        answer(
            self,
            applied,
            match &result {
                Ok(_) => "ok".into(),
                Err(e) => e.to_string(),
            },
        );
        result
    }
}

impl Connect for FakeAws {
    type Ops = FakeSession;

    async fn connect(&self, spec: AssumeSpec) -> Result<FakeSession, DeployError> {
        let account = spec
            .role_arn
            .split(':')
            .nth(4)
            .unwrap_or_default()
            .to_string();
        let region = spec.region.clone();
        let mut call = Call::new(Op::AssumeRole);
        call.spec = Some(spec);
        self.call(call, |_| Ok(())).await?;
        Ok(FakeSession {
            aws: self.clone(),
            account,
            region,
        })
    }
}

impl StackOps for FakeSession {
    async fn create_change_set(&self, input: ChangeSetInput) -> Result<String, DeployError> {
        let mut call = Call::new(Op::CreateChangeSet);
        call.stack = Some(input.stack_name.clone());
        call.change_set = Some(input.change_set_name.clone());
        call.token = Some(input.client_token.clone());
        call.kind = Some(input.change_set_type);
        let (account, region) = (self.account.clone(), self.region.clone());
        self.aws
            .call(call, move |w| {
                w.create_change_set(&account, &region, &input)
            })
            .await
    }

    async fn describe_change_set(
        &self,
        change_set_arn: &str,
    ) -> Result<ChangeSetState, DeployError> {
        let mut call = Call::new(Op::DescribeChangeSet);
        call.change_set = Some(change_set_arn.to_string());
        let id = change_set_arn.to_string();
        self.aws
            .call(call, move |w| w.describe_change_set(&id))
            .await
    }

    async fn change_set_arn(
        &self,
        stack_name: &str,
        change_set_name: &str,
    ) -> Result<String, DeployError> {
        let mut call = Call::new(Op::DescribeChangeSet);
        call.stack = Some(stack_name.to_string());
        call.change_set = Some(change_set_name.to_string());
        let (stack, name) = (stack_name.to_string(), change_set_name.to_string());
        self.aws
            .call(call, move |w| {
                w.change_sets
                    .iter()
                    .find(|c| !c.deleted && c.stack == stack && c.name == name)
                    .map(|c| c.arn.clone())
                    .ok_or_else(|| {
                        DeployError::NotFound(format!(
                            "ChangeSetNotFound: ChangeSet [{name}] does not exist"
                        ))
                    })
            })
            .await
    }

    async fn execute_change_set(
        &self,
        change_set_arn: &str,
        client_request_token: &str,
    ) -> Result<(), DeployError> {
        let mut call = Call::new(Op::ExecuteChangeSet);
        call.change_set = Some(change_set_arn.to_string());
        call.token = Some(client_request_token.to_string());
        let (id, token) = (change_set_arn.to_string(), client_request_token.to_string());
        self.aws.call(call, move |w| w.execute(&id, &token)).await
    }

    async fn describe_stack(&self, stack_name: &str) -> Result<Option<StackState>, DeployError> {
        let mut call = Call::new(Op::DescribeStack);
        call.stack = Some(stack_name.to_string());
        let name = stack_name.to_string();
        self.aws
            .call(call, move |w| Ok(w.describe_stack(&name)))
            .await
    }

    async fn stack_events(&self, stack_name: &str) -> Result<Vec<StackEvent>, DeployError> {
        let mut call = Call::new(Op::StackEvents);
        call.stack = Some(stack_name.to_string());
        let name = stack_name.to_string();
        self.aws.call(call, move |w| w.stack_events(&name)).await
    }

    async fn delete_stack(
        &self,
        stack_name: &str,
        client_request_token: &str,
    ) -> Result<(), DeployError> {
        let mut call = Call::new(Op::DeleteStack);
        call.stack = Some(stack_name.to_string());
        call.token = Some(client_request_token.to_string());
        let name = stack_name.to_string();
        self.aws
            .call(call, move |w| {
                w.stacks.remove(&name);
                Ok(())
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// The portal side: a fresh database with one approved request.
// ---------------------------------------------------------------------------------------------

/// One approved request with its queued deployment, and the fake the worker talks to.
struct Scenario {
    state: AppState,
    fake: FakeAws,
    alice: CurrentUser,
    request_id: String,
    deployment_id: String,
    stack_name: String,
}

impl Drop for Scenario {
    /// Removes the scenario's SQLite files (the pool may still be open: unlinking is fine).
    fn drop(&mut self) {
        if let Some(path) = self.state.config.database_url.strip_prefix("sqlite://") {
            for suffix in ["", "-wal", "-shm", ".lock"] {
                let _ = std::fs::remove_file(format!("{path}{suffix}"));
            }
        }
    }
}

async fn insert_user(db: &Db, name: &str, groups: &[&str], roles: Roles) -> CurrentUser {
    let id = uuid::Uuid::new_v4().to_string();
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    sqlx::query(
        "insert into users (id, issuer, subject, email, name, groups_json, created_at, \
         last_login_at) values ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(id.clone())
    .bind("https://idp.test".to_string())
    .bind(name.to_string())
    .bind(format!("{name}@example.test"))
    .bind(name.to_string())
    .bind(serde_json::to_string(&groups).unwrap())
    .bind(now_ms())
    .execute(db.pool())
    .await
    .unwrap();
    CurrentUser {
        id,
        issuer: "https://idp.test".into(),
        subject: name.into(),
        name: name.into(),
        email: None,
        roles,
        csrf_token: String::new(),
        source_ip: Some("192.0.2.10".into()),
        groups_checked_at: 0,
        auth_time: None,
        session: None,
    }
}

impl Scenario {
    /// A fresh database, alice's network request for the dev account approved by bob.
    async fn new() -> Scenario {
        Self::with(&[]).await
    }

    async fn with(extra: &[(&str, &str)]) -> Scenario {
        stackgate::telemetry::init_for_tests();
        let dir = std::env::temp_dir().join("stackgate-engine-it");
        std::fs::create_dir_all(&dir).unwrap();
        let db_url = format!(
            "sqlite://{}/{}.db",
            dir.display(),
            uuid::Uuid::new_v4().simple()
        );
        let config = test_config(
            vec![
                ("STACKGATE_CONFIG", repo("config/demo.toml")),
                ("STACKGATE_DATABASE_URL", db_url),
                (
                    "STACKGATE_OIDC_ISSUER",
                    "http://127.0.0.1:9/not-used".into(),
                ),
                ("STACKGATE_OIDC_CLIENT_ID", "not-used".into()),
                ("STACKGATE_OIDC_CLIENT_SECRET", "not-used".into()),
                ("STACKGATE_CATALOG_DIR", repo("cloudformation")),
                ("STACKGATE_RULES_DIR", repo("cloudformation/rules")),
                ("STACKGATE_WORKER", "false".into()),
                ("STACKGATE_WORKER_POLL_MS", "5".into()),
                ("STACKGATE_LEASE_SECONDS", "5".into()),
                ("STACKGATE_LOG_FORMAT", "pretty".into()),
            ],
            extra,
        );
        let state = stackgate::build_state(config).await.expect("build state");
        let alice = insert_user(
            &state.db,
            "alice",
            &["payments-requesters"],
            Roles {
                requester_teams: vec!["payments".into()],
                ..Roles::default()
            },
        )
        .await;
        let bob = insert_user(
            &state.db,
            "bob",
            &["payments-approvers"],
            Roles {
                approver_teams: vec!["payments".into()],
                ..Roles::default()
            },
        )
        .await;
        let name = format!("e{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let input = NewRequest {
            team: Some("payments".into()),
            blueprint: "network".into(),
            account_id: DEV.into(),
            region: REGION.into(),
            name,
            parameters: [("vpc_cidr", "10.42.0.0/16"), ("az_count", "2")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let (request_id, _number) = requests::actions::submit(&state, &alice, &input)
            .await
            .expect("alice submits");
        let outcome = approvals::actions::decide(
            &state,
            &bob,
            &request_id,
            Decision::Approve,
            "Looks right.",
        )
        .await
        .expect("bob approves");
        assert_eq!(outcome.status, RequestStatus::Approved);
        let deployment_id = outcome.deployment_id.expect("a deployment is queued");
        let stack_name = requests::store::get(&state.db, &request_id)
            .await
            .unwrap()
            .unwrap()
            .stack_name;
        Scenario {
            state,
            fake: FakeAws::new(),
            alice,
            request_id,
            deployment_id,
            stack_name,
        }
    }

    fn db(&self) -> &Db {
        &self.state.db
    }

    fn worker(&self) -> Worker<FakeAws> {
        Worker::new(
            self.state.db.clone(),
            self.state.config.clone(),
            self.fake.clone(),
        )
    }

    async fn deployment(&self) -> Deployment {
        deployments::store::get(self.db(), &self.deployment_id)
            .await
            .unwrap()
            .expect("the deployment")
    }

    async fn request(&self) -> ServiceRequest {
        requests::store::get(self.db(), &self.request_id)
            .await
            .unwrap()
            .expect("the request")
    }

    async fn audit(&self) -> Vec<Record> {
        stackgate::audit::store::for_object(self.db(), "request", &self.request_id)
            .await
            .unwrap()
    }

    async fn audit_actions(&self) -> Vec<String> {
        self.audit().await.into_iter().map(|r| r.action).collect()
    }

    /// Reads one integer column of the deployment row.
    async fn column(&self, column: &str) -> Option<i64> {
        use sqlx::Row;
        let sql = format!("select {column} from deployments where id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(self.deployment_id.clone())
            .fetch_one(self.db().pool())
            .await
            .unwrap()
            .try_get::<Option<i64>, _>(0)
            .unwrap()
    }

    async fn exec(&self, sql: &'static str) {
        let done = sqlx::query(sql)
            .bind(self.deployment_id.clone())
            .execute(self.db().pool())
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 1, "{sql}");
    }

    /// Runs a statement about the request (`$1` is its id); it must change something.
    async fn exec_request(&self, sql: &str) {
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .bind(self.request_id.clone())
            .execute(self.db().pool())
            .await
            .unwrap();
        assert!(done.rows_affected() >= 1, "{sql}");
    }

    /// The job's backoff is over (instead of sleeping).
    async fn make_due(&self) {
        self.exec("update deployments set next_attempt_at = 0 where id = $1")
            .await;
    }

    /// The job's lease ran out (instead of sleeping).
    async fn expire_lease(&self) {
        self.exec("update deployments set lease_expires_at = 1 where id = $1")
            .await;
    }

    /// What every test checks at the end: the audit chain verifies; every token the fake saw
    /// is a valid, deterministic `dep-<deployment>-<step>-<epoch>`; no stack got more than one
    /// change set, no change set was executed twice, nothing was ever deleted.
    async fn check_invariants(&self) {
        let v = stackgate::audit::store::verify(self.db()).await.unwrap();
        assert_eq!(v.broken_at, None, "the audit chain verifies");
        assert!(v.records > 0);
        let prefix = format!("dep-{}-", self.deployment_id);
        for call in self.fake.calls() {
            if let Some(t) = &call.token {
                assert!(
                    valid_token(t),
                    "token {t} fits [a-zA-Z0-9][-a-zA-Z0-9]*, ≤128"
                );
                let rest = t
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("token {t} names the deployment"));
                let (step, epoch) = rest.rsplit_once('-').expect("<step>-<epoch>");
                let want = match call.op {
                    Op::CreateChangeSet => "changeset",
                    Op::ExecuteChangeSet => "execute",
                    _ => step,
                };
                assert_eq!(step, want, "{t}");
                assert!(epoch.parse::<i64>().unwrap() >= 1, "{t}");
            }
        }
        self.fake.world(|w| {
            let applied: Vec<_> = w
                .change_sets
                .iter()
                .filter(|c| c.name == format!("stackgate-{}", self.deployment_id))
                .collect();
            assert!(applied.len() <= 1, "at most one change set per deployment");
            let mut executed: Vec<&String> = w.executions.iter().map(|(a, _)| a).collect();
            let n = executed.len();
            executed.dedup();
            assert_eq!(executed.len(), n, "no change set executed twice");
        });
        assert_eq!(self.fake.count(Op::DeleteStack), 0, "nothing deleted");
        let started = self
            .audit()
            .await
            .into_iter()
            .filter(|r| r.action == "deploy.started")
            .count();
        assert!(started <= 1, "one deploy.started per deployment");
    }
}

fn calls_of(calls: &[Call], op: Op) -> Vec<Call> {
    calls.iter().filter(|c| c.op == op).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_assumes_the_role_once_creates_one_change_set_executes_it_once_and_records_outputs()
 {
    let s = Scenario::new().await;
    let worker = s.worker();
    assert!(
        worker.run_once().await.unwrap(),
        "the worker claims the job"
    );
    assert!(!worker.run_once().await.unwrap(), "nothing else to do");

    let calls = s.fake.calls();
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.step, Step::Finished);
    assert_eq!(d.epoch, 1);
    assert_eq!(d.attempts, 0);
    assert_eq!(s.fake.count(Op::AssumeRole), 1);
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);
    assert_eq!(calls.iter().filter(|c| c.op.mutating()).count(), 2);

    // AssumeRole: the registry's role and ExternalId, a session naming the request.
    let account = stackgate::accounts::store::get(s.db(), DEV)
        .await
        .unwrap()
        .unwrap();
    let request = s.request().await;
    let spec = calls[0].spec.clone().expect("AssumeRole first");
    assert_eq!(calls[0].op, Op::AssumeRole);
    assert_eq!(spec.role_arn, account.deploy_role_arn.as_str());
    assert_eq!(spec.external_id, account.external_id);
    assert_eq!(spec.region, REGION);
    assert!(
        spec.session_name
            .starts_with(&format!("stackgate-req{}-", request.number)),
        "{}",
        spec.session_name
    );
    assert_eq!(spec.source_identity, format!("stackgate-{}", s.alice.id));
    assert!(spec.tags.contains(&("team".into(), "payments".into())));

    // CreateChangeSet then ExecuteChangeSet of exactly the ARN it answered, with the
    // deterministic tokens of epoch 1.
    let create = &calls_of(&calls, Op::CreateChangeSet)[0];
    let execute = &calls_of(&calls, Op::ExecuteChangeSet)[0];
    assert_eq!(create.kind, Some(ChangeSetKind::Create));
    assert_eq!(create.stack.as_deref(), Some(s.stack_name.as_str()));
    assert_eq!(
        create.change_set.as_deref(),
        Some(format!("stackgate-{}", d.id).as_str())
    );
    assert_eq!(
        create.token.as_deref(),
        Some(format!("dep-{}-changeset-1", d.id).as_str())
    );
    assert_eq!(
        execute.token.as_deref(),
        Some(format!("dep-{}-execute-1", d.id).as_str())
    );
    let arn = d
        .change_set_arn
        .clone()
        .expect("the change set ARN is recorded");
    assert_eq!(execute.change_set.as_deref(), Some(arn.as_str()));
    for t in [
        create.token.as_ref().unwrap(),
        execute.token.as_ref().unwrap(),
    ] {
        assert!(valid_token(t) && t.len() <= 128, "{t}");
    }
    let pos = |op| calls.iter().position(|c| c.op == op).unwrap();
    assert!(pos(Op::AssumeRole) < pos(Op::CreateChangeSet));
    assert!(pos(Op::CreateChangeSet) < pos(Op::ExecuteChangeSet));

    // Outputs, stack id, changes and events recorded; the request is deployed.
    let stack_id = s.fake.world(|w| w.stacks[&s.stack_name].id.clone());
    assert_eq!(d.stack_id.as_deref(), Some(stack_id.as_str()));
    let outputs: Vec<(&str, &str)> = d
        .outputs
        .iter()
        .map(|o| (o.key.as_str(), o.value.as_str()))
        .collect();
    assert_eq!(
        outputs,
        vec![
            ("VpcId", "vpc-0fake1234"),
            ("PublicSubnetIds", "subnet-0a,subnet-0b")
        ]
    );
    assert!(
        d.changes.len() > 10,
        "every resource of the template: {}",
        d.changes.len()
    );
    assert!(d.changes.iter().all(|c| c.action == "Add"));
    let events = deployments::store::events(s.db(), &d.id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.logical_id == s.stack_name && e.status == "CREATE_COMPLETE"),
        "{events:?}"
    );
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::Deployed);

    // Audit: each step, correlated with the deployment's tokens.
    let audit = s.audit().await;
    let actions: Vec<&str> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec![
            "request.submitted",
            "approval.approved",
            "request.approved",
            "deploy.started",
            "deploy.change_set_created",
            "deploy.succeeded"
        ]
    );
    let correlation = |action: &str| {
        audit
            .iter()
            .find(|r| r.action == action)
            .and_then(|r| r.correlation_id.clone())
            .unwrap()
    };
    assert_eq!(
        correlation("deploy.started"),
        format!("dep-{}-start-1", d.id)
    );
    assert_eq!(
        correlation("deploy.change_set_created"),
        format!("dep-{}-changeset-1", d.id)
    );
    assert_eq!(
        correlation("deploy.succeeded"),
        format!("dep-{}-finish-1", d.id)
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_set_created_but_whose_answer_was_lost_is_found_again_and_not_created_twice() {
    let s = Scenario::new().await;
    s.fake.drop_next_response(Op::CreateChangeSet);
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());

    // The outcome is unknown to the engine: the job goes back to the queue, with backoff.
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Queued);
    assert_eq!(d.step, Step::ChangeSetRequested);
    assert_eq!(d.attempts, 1);
    assert!(
        d.error.as_deref().unwrap_or("").contains("transient"),
        "{:?}",
        d.error
    );
    assert!(s.column("next_attempt_at").await.unwrap() > s.column("updated_at").await.unwrap());
    assert_eq!(s.request().await.status, RequestStatus::Deploying);
    assert_eq!(s.fake.world(|w| w.change_sets_of(&s.stack_name).len()), 1);

    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.epoch, 2);

    // The retry found a stack under review without tags: before anything else it asked for this
    // deployment's change set on it by stack and name, found it, and created nothing more.
    let creates = calls_of(&s.fake.calls(), Op::CreateChangeSet);
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(creates[0].applied);
    // It found the existing change set by stack and name (a bare name is not enough for
    // CloudFormation), and used its ARN from then on.
    let lookups: Vec<Call> = calls_of(&s.fake.calls(), Op::DescribeChangeSet)
        .into_iter()
        .filter(|c| c.stack.is_some())
        .collect();
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    assert_eq!(lookups[0].change_set, creates[0].change_set);
    assert!(
        calls_of(&s.fake.calls(), Op::ExecuteChangeSet).len() == 1,
        "executed once"
    );
    let change_sets = s.fake.world(|w| w.change_sets_of(&s.stack_name));
    assert_eq!(change_sets.len(), 1, "one change set for the deployment");
    assert_eq!(
        d.change_set_arn.as_deref(),
        Some(change_sets[0].arn.as_str())
    );
    let executions = s.fake.world(|w| w.executions.clone());
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].0, change_sets[0].arn);
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_whose_answer_was_lost_is_reconciled_from_aws_and_not_sent_again() {
    let s = Scenario::new().await;
    s.fake.drop_next_response(Op::ExecuteChangeSet);
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Queued);
    assert_eq!(d.step, Step::ExecuteRequested);
    assert_eq!(d.attempts, 1);
    assert!(d.change_set_arn.is_some());
    assert_eq!(
        s.fake.world(|w| w.executions.len()),
        1,
        "the execute was applied"
    );
    let before = s.fake.calls().len();

    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.epoch, 2);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1, "exactly one execute");
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1);

    // The recovered job read AWS first (the change set, then the stack) and sent nothing.
    let recovery: Vec<Op> = s.fake.calls()[before..].iter().map(|c| c.op).collect();
    assert_eq!(recovery[0], Op::AssumeRole);
    assert_eq!(recovery[1], Op::DescribeChangeSet, "{recovery:?}");
    assert!(recovery.contains(&Op::DescribeStack));
    assert!(recovery.iter().all(|op| !op.mutating()), "{recovery:?}");
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    assert_eq!(d.outputs.len(), 2);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_died_after_executing_is_replaced_by_one_with_a_new_epoch_that_does_not_execute_again()
 {
    let s = Scenario::new().await;
    let reached = s.fake.hang_next(Op::ExecuteChangeSet, true);
    let first = s.worker();
    tokio::select! {
        r = first.run_once() => panic!("the worker should hang in ExecuteChangeSet: {r:?}"),
        _ = reached.notified() => {}
    }
    drop(first); // the process dies inside the call

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Running);
    assert_eq!(d.step, Step::ExecuteRequested);
    assert_eq!(d.epoch, 1);
    assert_eq!(s.fake.world(|w| w.executions.len()), 1);

    // While the dead worker's lease runs, nobody takes the job.
    let second = s.worker();
    assert!(
        !second.run_once().await.unwrap(),
        "a live lease is respected"
    );
    s.expire_lease().await;
    let before = s.fake.calls().len();
    assert!(second.run_once().await.unwrap());

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.epoch, 2, "the new owner works under epoch + 1");
    assert_eq!(d.attempts, 0);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1, "no second execute");
    let recovery: Vec<Op> = s.fake.calls()[before..].iter().map(|c| c.op).collect();
    assert_eq!(recovery[..2], [Op::AssumeRole, Op::DescribeChangeSet]);
    assert!(recovery.iter().all(|op| !op.mutating()), "{recovery:?}");
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    let audit = s.audit().await;
    let finished = audit
        .iter()
        .find(|r| r.action == "deploy.succeeded")
        .unwrap();
    assert_eq!(
        finished.correlation_id.as_deref(),
        Some(format!("dep-{}-finish-2", d.id).as_str())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_died_before_its_execute_reached_aws_is_replaced_by_one_that_executes_once() {
    let s = Scenario::new().await;
    let reached = s.fake.hang_next(Op::ExecuteChangeSet, false);
    let first = s.worker();
    tokio::select! {
        r = first.run_once() => panic!("the worker should hang in ExecuteChangeSet: {r:?}"),
        _ = reached.notified() => {}
    }
    drop(first);
    assert_eq!(
        s.fake.world(|w| w.executions.len()),
        0,
        "no trace of the call"
    );
    assert_eq!(s.deployment().await.step, Step::ExecuteRequested);

    s.expire_lease().await;
    assert!(s.worker().run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    let executions = s.fake.world(|w| w.executions.clone());
    assert_eq!(executions.len(), 1, "executed once, by the new owner");
    assert_eq!(executions[0].1, format!("dep-{}-execute-2", d.id));
    assert_eq!(executions[0].0, d.change_set_arn.clone().unwrap());
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1);
    s.check_invariants().await;
}

/// Runs a worker until the fake pauses it before `op` (after `skip` such calls), lets
/// "another worker" take the job (epoch + 1), and resumes it. Returns the calls made after the
/// resume.
async fn lose_lease_at(s: &Scenario, op: Op, skip: usize) -> Vec<Call> {
    let (reached, release) = s.fake.pause_before(op, skip);
    let worker = s.worker();
    let task = tokio::spawn(async move { worker.run_once().await });
    reached.notified().await;
    let epoch = s.deployment().await.epoch;
    sqlx::query(
        "update deployments set epoch = epoch + 1, lease_owner = 'worker-other', \
         lease_expires_at = $1 where id = $2",
    )
    .bind(now_ms() + 60_000)
    .bind(s.deployment_id.clone())
    .execute(s.db().pool())
    .await
    .unwrap();
    let at_pause = s.fake.calls().len();
    let audit_before = s.audit().await.len();
    release.notify_one();
    assert!(task.await.unwrap().unwrap(), "run_once ends without error");

    let d = s.deployment().await;
    assert_eq!(d.epoch, epoch + 1, "the other worker's epoch stands");
    assert_eq!(
        d.status,
        DeploymentStatus::Running,
        "the first worker ended nothing"
    );
    let owner: String = {
        use sqlx::Row;
        sqlx::query("select lease_owner from deployments where id = $1")
            .bind(s.deployment_id.clone())
            .fetch_one(s.db().pool())
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    };
    assert_eq!(owner, "worker-other");
    assert_eq!(
        s.audit().await.len(),
        audit_before,
        "no audit record from the stale worker"
    );
    // The paused call itself ran (it was already under way); nothing after it may mutate.
    s.fake.calls()[at_pause..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_before_creating_the_change_set_creates_nothing() {
    let s = Scenario::new().await;
    // The first CloudFormation call of a fresh job is DescribeStacks (before CreateChangeSet).
    let after = lose_lease_at(&s, Op::DescribeStack, 0).await;
    let ops: Vec<Op> = after.iter().map(|c| c.op).collect();
    assert!(
        ops.iter().all(|op| !op.mutating()),
        "no mutating call after the lease was lost: {ops:?}"
    );
    assert_eq!(s.fake.count(Op::CreateChangeSet), 0);
    assert_eq!(s.deployment().await.step, Step::ChangeSetRequested);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_before_executing_does_not_execute() {
    let s = Scenario::new().await;
    s.fake.world(|w| w.change_set_ready_after = 0);
    // DescribeChangeSet #1 sees it complete; #2 is the check right before ExecuteChangeSet.
    let after = lose_lease_at(&s, Op::DescribeChangeSet, 1).await;
    let ops: Vec<Op> = after.iter().map(|c| c.op).collect();
    assert!(
        ops.iter().all(|op| !op.mutating()),
        "no mutating call after the lease was lost: {ops:?}"
    );
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0);
    assert_eq!(s.fake.world(|w| w.executions.len()), 0);
    assert_eq!(s.deployment().await.step, Step::ExecuteRequested);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_change_set_that_became_obsolete_is_not_executed_and_needs_attention() {
    let s = Scenario::new().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.change_set_ready_after = 0;
    });
    // After the change set is ready and before the engine executes it, someone else updates
    // the stack.
    let target = stack.clone();
    s.fake
        .before(Op::DescribeChangeSet, 1, move |w| w.foreign_update(&target));
    assert!(s.worker().run_once().await.unwrap());
    assert!(!s.worker().run_once().await.unwrap(), "no retry");

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::NeedsAttention);
    let error = d.error.clone().unwrap_or_default();
    assert!(error.contains("obsolete"), "{error}");
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "no execute");
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1, "no new change set");
    let create = &calls_of(&s.fake.calls(), Op::CreateChangeSet)[0];
    assert_eq!(create.kind, Some(ChangeSetKind::Update));
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::NeedsAttention);
    assert!(
        request
            .status_reason
            .as_deref()
            .unwrap_or("")
            .contains("obsolete"),
        "{:?}",
        request.status_reason
    );
    assert!(
        s.audit_actions()
            .await
            .contains(&"deploy.needs_attention".into())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_rolled_back_reports_the_failing_resource_and_its_reason() {
    let s = Scenario::new().await;
    let reason = "Resource handler returned message: \"User: arn:aws:sts::200000000001:\
                  assumed-role/stackgate-deploy/s is not authorized to perform: iam:CreateRole\"";
    s.fake.world(|w| {
        w.plan = ExecPlan::RollBack {
            resource: "FlowLogRole".into(),
            reason: reason.into(),
        }
    });
    assert!(s.worker().run_once().await.unwrap());
    assert!(!s.worker().run_once().await.unwrap(), "no retry loop");

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::RolledBack, "{:?}", d.error);
    let error = d.error.clone().unwrap_or_default();
    assert!(error.contains("ROLLBACK_COMPLETE"), "{error}");
    assert!(error.contains(&format!("FlowLogRole: {reason}")), "{error}");
    assert!(
        !error.contains("Resource creation cancelled"),
        "the first failure, not a later one"
    );
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::Failed);
    let why = request.status_reason.unwrap_or_default();
    assert!(
        why.contains("FlowLogRole") && why.contains("iam:CreateRole"),
        "{why}"
    );
    let events = deployments::store::events(s.db(), &d.id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.logical_id == "FlowLogRole" && e.status == "CREATE_FAILED"),
        "{events:?}"
    );
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);
    assert_eq!(s.fake.count(Op::CreateChangeSet), 1);
    assert!(s.audit_actions().await.contains(&"deploy.failed".into()));
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_rollback_failed_needs_attention_and_nothing_is_retried() {
    let s = Scenario::new().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.plan = ExecPlan::UpdateRollbackFailed {
            resource: "Vpc".into(),
            reason: "Resource handler returned message: CIDR block conflicts".into(),
        };
    });
    assert!(s.worker().run_once().await.unwrap());
    let after_end = s.fake.calls().len();
    // Even long after, nothing picks it up again.
    s.exec("update deployments set next_attempt_at = 0, lease_expires_at = null where id = $1")
        .await;
    assert!(!s.worker().run_once().await.unwrap(), "no automatic retry");
    assert_eq!(
        s.fake.calls().len(),
        after_end,
        "no further AWS call at all"
    );

    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{:?}", d.error);
    assert_eq!(d.attempts, 0);
    let error = d.error.clone().unwrap_or_default();
    assert!(error.contains("UPDATE_ROLLBACK_FAILED"), "{error}");
    assert!(
        error.contains("Vpc: Resource handler returned message: CIDR block conflicts"),
        "{error}"
    );
    assert!(
        !error.contains("an old failure"),
        "events of earlier operations are not reported"
    );
    let calls = s.fake.calls();
    assert_eq!(calls.iter().filter(|c| c.op.mutating()).count(), 2);
    assert_eq!(
        calls_of(&calls, Op::CreateChangeSet)[0].kind,
        Some(ChangeSetKind::Update)
    );
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::NeedsAttention);
    assert!(
        request
            .status_reason
            .unwrap_or_default()
            .contains("UPDATE_ROLLBACK_FAILED")
    );
    assert!(
        s.audit_actions()
            .await
            .contains(&"deploy.needs_attention".into())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_role_that_cannot_be_assumed_fails_naming_the_role_and_its_trust_policy_without_calling_cloudformation()
 {
    let s = Scenario::new().await;
    s.fake.fail_next(
        Op::AssumeRole,
        DeployError::AssumeRoleDenied(
            "AccessDenied: User: arn:aws:sts::100000000004:assumed-role/stackgate/portal is not \
             authorized to perform: sts:AssumeRole on resource: \
             arn:aws:iam::200000000001:role/stackgate-deploy"
                .into(),
        ),
    );
    assert!(s.worker().run_once().await.unwrap());
    assert!(!s.worker().run_once().await.unwrap(), "not retried");

    let calls = s.fake.calls();
    assert_eq!(
        calls.iter().map(|c| c.op).collect::<Vec<_>>(),
        vec![Op::AssumeRole],
        "no CloudFormation call at all"
    );
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Failed);
    let error = d.error.clone().unwrap_or_default();
    assert!(
        error.contains("arn:aws:iam::200000000001:role/stackgate-deploy"),
        "{error}"
    );
    assert!(error.contains("trust policy"), "{error}");
    let request = s.request().await;
    assert_eq!(request.status, RequestStatus::Failed);
    assert!(
        request
            .status_reason
            .unwrap_or_default()
            .contains("trust policy")
    );
    assert!(s.audit_actions().await.contains(&"deploy.failed".into()));
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_with_growing_backoff_and_stop_at_needs_attention_after_the_budget()
 {
    // A poll interval of 5 s makes each backoff long enough to observe "not due yet"; the test
    // makes the job due in SQL instead of sleeping.
    let s = Scenario::with(&[("STACKGATE_WORKER_POLL_MS", "5000")]).await;
    let throttled = || DeployError::Transient("Throttling: Rate exceeded".into());
    s.fake
        .script(Op::AssumeRole, 0, Some(2), Action::Fail(throttled()));
    for op in [
        Op::DescribeStack,
        Op::CreateChangeSet,
        Op::DescribeChangeSet,
        Op::ExecuteChangeSet,
        Op::StackEvents,
    ] {
        s.fake.fail_always(op, throttled());
    }
    let worker = s.worker();
    let mut attempt = 0;
    loop {
        assert!(worker.run_once().await.unwrap(), "claim {}", attempt + 1);
        let d = s.deployment().await;
        if d.status != DeploymentStatus::Queued {
            break;
        }
        attempt += 1;
        assert_eq!(d.attempts, attempt);
        assert!(
            d.error.as_deref().unwrap_or("").contains("Rate exceeded"),
            "{:?}",
            d.error
        );
        let next = s.column("next_attempt_at").await.unwrap();
        let at = s.column("updated_at").await.unwrap();
        assert!(next > now_ms(), "the retry is in the future");
        let base = 5000 << (attempt - 1);
        assert!(
            (base..=base + base / 5).contains(&(next - at)),
            "exponential backoff with at most 20% jitter: {} for attempt {attempt}",
            next - at
        );
        assert!(!worker.run_once().await.unwrap(), "not due yet");
        // Unknown outcomes are not failures: the request is still deploying.
        assert_eq!(s.request().await.status, RequestStatus::Deploying);
        s.make_due().await;
        assert!(attempt < 20, "the budget ends the retries");
    }
    let d = s.deployment().await;
    assert_eq!(attempt, 7, "eight attempts in all");
    assert_eq!(d.status, DeploymentStatus::NeedsAttention);
    assert!(
        d.error
            .as_deref()
            .unwrap_or("")
            .contains("Gave up after 8 attempts"),
        "{:?}",
        d.error
    );
    assert_eq!(d.epoch, 8);
    assert_eq!(s.fake.count(Op::AssumeRole), 8);
    assert_eq!(s.fake.count(Op::DescribeStack), 6);
    assert_eq!(
        s.fake.calls().iter().filter(|c| c.op.mutating()).count(),
        0,
        "nothing mutating was attempted"
    );
    assert_eq!(s.request().await.status, RequestStatus::NeedsAttention);
    assert!(
        s.audit_actions()
            .await
            .contains(&"deploy.needs_attention".into())
    );
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_cancelled_before_the_worker_starts_deploys_nothing() {
    let s = Scenario::new().await;
    approvals::actions::cancel(&s.state, &s.alice, &s.request_id)
        .await
        .expect("alice cancels");
    assert!(!s.worker().run_once().await.unwrap(), "nothing to claim");
    assert!(s.fake.calls().is_empty(), "zero AWS calls");
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    assert_eq!(s.request().await.status, RequestStatus::Cancelled);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_longer_approved_as_queued_is_not_deployed_when_the_job_is_claimed() {
    // A request cancelled behind the queue is simply not deployed.
    let s = Scenario::new().await;
    s.exec_request("update service_requests set status = 'cancelled' where id = $1")
        .await;
    assert!(s.worker().run_once().await.unwrap());
    assert!(s.fake.calls().is_empty(), "zero AWS calls");
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Cancelled);
    assert!(d.error.unwrap_or_default().contains("cancelled"));
    assert_eq!(s.request().await.status, RequestStatus::Cancelled);
    assert!(s.audit_actions().await.contains(&"deploy.cancelled".into()));
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_edited_in_the_database_after_approval_is_refused_without_any_aws_call() {
    // Each case edits what was approved, behind the portal's back; the worker re-derives the
    // digest, the binding and the approvals from what is stored and refuses to act.
    let cases = [
        (
            "the template body",
            "update rendered_templates set body = body || ' ' where digest = \
             (select template_digest from service_requests where id = $1)",
            "no longer matches the digest",
        ),
        (
            "the request's content hash",
            "update service_requests set content_hash = '0000' where id = $1",
            "changed after approval",
        ),
        (
            "the request's parameters",
            "update service_requests set params_json = '{\"vpc_cidr\":\"10.0.0.0/16\"}' where id = $1",
            "changed after approval",
        ),
        (
            "the deployment's stack",
            "update deployments set stack_name = 'stackgate-lending--x-dev' where request_id = $1",
            "not the approved",
        ),
        (
            "the deployment's account",
            "update deployments set account_id = '200000000002' where request_id = $1",
            "not the approved",
        ),
        (
            "the account's deploy role",
            "update accounts set deploy_role_arn = 'arn:aws:iam::200000000001:role/other' \
             where id = (select account_id from service_requests where id = $1)",
            "roles changed",
        ),
        (
            "an approval withdrawn",
            "delete from approvals where request_id = $1",
            "0 of the 1 valid approvals",
        ),
        (
            "the approver disabled",
            "update users set disabled = 1 where id in \
             (select approver_id from approvals where request_id = $1)",
            "has been disabled",
        ),
        (
            "the approver's groups gone",
            "update users set groups_json = '[]' where id in \
             (select approver_id from approvals where request_id = $1)",
            "no longer an approver",
        ),
    ];
    for (what, sql, reason) in cases {
        let s = Scenario::new().await;
        s.exec_request(sql).await;
        assert!(s.worker().run_once().await.unwrap(), "{what}");
        assert!(s.fake.calls().is_empty(), "{what}: zero AWS calls");
        let d = s.deployment().await;
        assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{what}");
        let error = d.error.unwrap_or_default();
        assert!(error.contains(reason), "{what}: {error}");
        assert!(error.contains("refused to deploy"), "{what}: {error}");
        let request = s.request().await;
        assert_eq!(request.status, RequestStatus::NeedsAttention, "{what}");
        let audit = s.audit().await;
        let last = audit.last().unwrap();
        assert_eq!(last.action, "deploy.needs_attention", "{what}");
        assert!(
            last.detail["error"].as_str().unwrap().contains(reason),
            "{what}"
        );
        s.check_invariants().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_lease_while_waiting_for_the_change_set_writes_nothing_more() {
    let s = Scenario::new().await;
    // DescribeChangeSet #1 answers CREATE_IN_PROGRESS; the lease is lost while it runs.
    let after = lose_lease_at(&s, Op::DescribeChangeSet, 0).await;
    assert!(
        after.iter().all(|c| !c.op.mutating()),
        "no mutating call after the lease was lost: {after:?}"
    );
    let d = s.deployment().await;
    assert_eq!(d.attempts, 0, "the stale worker did not requeue the job");
    assert_eq!(d.step, Step::ChangeSetRequested);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_error_while_waiting_for_the_change_set_resumes_with_the_same_change_set() {
    let s = Scenario::new().await;
    s.fake.fail_next(
        Op::DescribeChangeSet,
        DeployError::Transient("Throttling: Rate exceeded".into()),
    );
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());
    assert_eq!(s.deployment().await.status, DeploymentStatus::Queued);
    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    let change_sets = s.fake.world(|w| w.change_sets_of(&s.stack_name));
    assert_eq!(change_sets.len(), 1);
    assert_eq!(
        d.change_set_arn.as_deref(),
        Some(change_sets[0].arn.as_str())
    );
    assert_eq!(s.fake.world(|w| w.executions.len()), 1);
    s.check_invariants().await;
}

/// Where a worker can die (F2): inside which call (after `skip` earlier calls of it), and
/// whether the call reached AWS before the process died.
const KILL_POINTS: [(Op, usize, bool, &str); 9] = [
    (Op::AssumeRole, 0, false, "before AssumeRole"),
    (Op::DescribeStack, 0, false, "before CreateChangeSet"),
    (
        Op::CreateChangeSet,
        0,
        false,
        "in CreateChangeSet, before it reached AWS",
    ),
    (
        Op::CreateChangeSet,
        0,
        true,
        "after CreateChangeSet, before the DB commit",
    ),
    (
        Op::DescribeChangeSet,
        0,
        true,
        "while waiting for the change set",
    ),
    (
        Op::ExecuteChangeSet,
        0,
        false,
        "in ExecuteChangeSet, before it reached AWS",
    ),
    (Op::ExecuteChangeSet, 0, true, "after ExecuteChangeSet"),
    (Op::DescribeStack, 1, true, "while polling"),
    (
        Op::StackEvents,
        1,
        true,
        "after the terminal status was seen",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_any_step_is_finished_by_the_next_with_one_change_set_and_one_execute() {
    for (op, skip, applied, label) in KILL_POINTS {
        let s = Scenario::new().await;
        let reached = Arc::new(Notify::new());
        s.fake.script(
            op,
            skip,
            Some(1),
            Action::Hang {
                apply: applied,
                reached: reached.clone(),
            },
        );
        let first = s.worker();
        tokio::select! {
            r = first.run_once() => panic!("{label}: the worker should hang: {r:?}"),
            _ = reached.notified() => {}
        }
        drop(first);
        assert_eq!(
            s.deployment().await.status,
            DeploymentStatus::Running,
            "{label}"
        );
        s.expire_lease().await;
        let second = s.worker();
        assert!(second.run_once().await.unwrap(), "{label}");

        let d = s.deployment().await;
        assert_eq!(
            d.status,
            DeploymentStatus::Succeeded,
            "{label}: {:?}",
            d.error
        );
        assert_eq!(d.epoch, 2, "{label}");
        assert_eq!(d.outputs.len(), 2, "{label}");
        let change_sets = s.fake.world(|w| w.change_sets_of(&s.stack_name));
        assert_eq!(change_sets.len(), 1, "{label}: one change set");
        assert_eq!(
            s.fake.world(|w| w.executions.len()),
            1,
            "{label}: one execute"
        );
        assert_eq!(s.request().await.status, RequestStatus::Deployed, "{label}");
        let actions = s.audit_actions().await;
        let n = |a: &str| actions.iter().filter(|x| *x == a).count();
        assert_eq!(n("deploy.started"), 1, "{label}: {actions:?}");
        assert_eq!(n("deploy.change_set_created"), 1, "{label}: {actions:?}");
        assert_eq!(n("deploy.succeeded"), 1, "{label}: {actions:?}");
        s.check_invariants().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_whose_change_set_was_removed_before_execution_is_not_reported_deployed() {
    let s = Scenario::new().await;
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        w.seed_stack(&stack, "UPDATE_COMPLETE", "payments");
        w.change_set_ready_after = 0;
    });
    let target = stack.clone();
    // Someone deletes the change set after the engine saved its ARN, before it executes it.
    s.fake.before(Op::DescribeChangeSet, 1, move |w| {
        for cs in w.change_sets.iter_mut().filter(|c| c.stack == target) {
            cs.deleted = true;
        }
    });
    let worker = s.worker();
    let run = tokio::time::timeout(std::time::Duration::from_secs(10), worker.run_once());
    assert!(run.await.expect("the worker ends").unwrap());
    assert_eq!(
        s.fake.world(|w| w.executions.len()),
        0,
        "nothing was executed"
    );
    let d = s.deployment().await;
    assert_ne!(
        d.status,
        DeploymentStatus::Succeeded,
        "a deployment that executed nothing is not deployed"
    );
    assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{:?}", d.error);
    assert_ne!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_change_set_was_removed_before_execution_ends_instead_of_polling_forever() {
    let s = Scenario::new().await;
    s.fake.world(|w| w.change_set_ready_after = 0);
    let target = s.stack_name.clone();
    s.fake.before(Op::DescribeChangeSet, 1, move |w| {
        for cs in w.change_sets.iter_mut().filter(|c| c.stack == target) {
            cs.deleted = true;
        }
    });
    // The stack stays REVIEW_IN_PROGRESS for ever: nothing will move it.
    let worker = s.worker();
    let run = tokio::time::timeout(std::time::Duration::from_secs(10), worker.run_once());
    assert!(
        run.await
            .expect("the worker ends the job instead of polling a stack in review for ever")
            .unwrap()
    );
    assert_eq!(s.fake.world(|w| w.executions.len()), 0);
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::NeedsAttention, "{:?}", d.error);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executed_change_set_that_was_cleaned_up_is_recognised_by_its_token_and_not_executed_again()
 {
    let s = Scenario::new().await;
    s.fake.drop_next_response(Op::ExecuteChangeSet);
    let worker = s.worker();
    assert!(worker.run_once().await.unwrap());
    assert_eq!(s.deployment().await.step, Step::ExecuteRequested);
    // The change set is gone by the time the job is recovered.
    let stack = s.stack_name.clone();
    s.fake.world(|w| {
        for cs in w.change_sets.iter_mut().filter(|c| c.stack == stack) {
            cs.deleted = true;
        }
    });
    s.make_due().await;
    assert!(worker.run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1, "not executed again");
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_asked_to_stop_while_polling_hands_the_job_back_and_the_next_worker_finishes_it() {
    let s = Scenario::new().await;
    // Stop the worker at its first look at the stack after executing (the create-time check is
    // the first DescribeStacks).
    let (reached, release) = s.fake.pause_before(Op::DescribeStack, 1);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(s.worker().run(stop_rx));
    reached.notified().await;
    stop_tx.send(true).unwrap();
    release.notify_one();
    tokio::time::timeout(std::time::Duration::from_secs(5), running)
        .await
        .expect("the worker stops promptly")
        .unwrap();

    let d = s.deployment().await;
    assert_eq!(
        d.status,
        DeploymentStatus::Queued,
        "handed back to the queue"
    );
    assert_eq!(d.step, Step::ExecuteRequested, "at its last durable step");
    assert_eq!(d.attempts, 0, "a stop is not a failed attempt");
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);

    assert!(s.worker().run_once().await.unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(
        s.fake.count(Op::ExecuteChangeSet),
        1,
        "the next worker did not execute again"
    );
    assert_eq!(s.request().await.status, RequestStatus::Deployed);
    s.check_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_this_request_does_not_own_is_never_touched_and_no_other_team_is_named() {
    // (a) another team's stack with the same name; (b) a stack under review (no tags yet) that
    // holds someone else's change set, not this deployment's.
    for (what, status, team) in [
        ("tagged for another team", "UPDATE_COMPLETE", "lending"),
        ("under review, not ours", "REVIEW_IN_PROGRESS", ""),
    ] {
        let s = Scenario::new().await;
        let stack = s.stack_name.clone();
        s.fake.world(|w| {
            w.seed_stack(&stack, status, team);
            if let Some(st) = w.stacks.get_mut(&stack).filter(|_| team.is_empty()) {
                st.tags.clear();
            }
        });
        assert!(s.worker().run_once().await.unwrap(), "{what}");
        let d = s.deployment().await;
        assert_eq!(d.status, DeploymentStatus::Failed, "{what}");
        let error = d.error.unwrap_or_default();
        assert!(error.contains("already exists"), "{what}: {error}");
        assert!(
            !error.contains("lending"),
            "{what}: names another team: {error}"
        );
        assert_eq!(s.fake.count(Op::CreateChangeSet), 0, "{what}");
        assert_eq!(s.fake.count(Op::ExecuteChangeSet), 0, "{what}");
        s.check_invariants().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_call_slower_than_the_lease_keeps_the_job_with_its_worker() {
    // A one-second lease; CloudFormation takes three seconds to answer DescribeChangeSet.
    let s = Scenario::with(&[("STACKGATE_LEASE_SECONDS", "1")]).await;
    let (reached, release) = s.fake.pause_before(Op::DescribeChangeSet, 0);
    let first = s.worker();
    let running = tokio::spawn(async move { first.run_once().await });
    reached.notified().await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    // Another worker finds nothing to take: the first one kept its lease alive while it waited.
    assert!(
        !s.worker().run_once().await.unwrap(),
        "the job was taken over"
    );
    assert!(s.column("lease_expires_at").await.unwrap() > now_ms());
    release.notify_one();
    assert!(running.await.unwrap().unwrap());
    let d = s.deployment().await;
    assert_eq!(d.status, DeploymentStatus::Succeeded, "{:?}", d.error);
    assert_eq!(d.epoch, 1, "one claim only");
    assert_eq!(s.fake.count(Op::ExecuteChangeSet), 1);
    s.check_invariants().await;
}
