//! `FakeAws`: the scriptable STS + CloudFormation the engine cases run against. It keeps
//! CloudFormation's side (stacks, change sets, executions) in a `World`, records every call, and
//! lets a case script faults per operation: an error, a lost answer, a call that hangs (the
//! process dies in it), a pause, or someone else changing the world first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use stackgate::aws::{
    AssumeSpec, ChangeSetInput, ChangeSetKind, ChangeSetState, DeployError, ResourceChange,
    StackEvent, StackOps, StackState,
};
use stackgate::worker::Connect;
use tokio::sync::Notify;

use super::{DEV, REGION};

/// The AWS operations the engine can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    AssumeRole,
    CreateChangeSet,
    DescribeChangeSet,
    ExecuteChangeSet,
    DescribeStack,
    StackEvents,
    DeleteStack,
    DeleteChangeSet,
    GetTemplate,
}

impl Op {
    pub(super) fn mutating(self) -> bool {
        matches!(
            self,
            Op::CreateChangeSet | Op::ExecuteChangeSet | Op::DeleteStack | Op::DeleteChangeSet
        )
    }
}

/// One call as the fake saw it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) op: Op,
    pub(super) stack: Option<String>,
    /// The change-set name (CreateChangeSet) or the identifier sent (Describe/Execute).
    pub(super) change_set: Option<String>,
    pub(super) token: Option<String>,
    pub(super) kind: Option<ChangeSetKind>,
    pub(super) spec: Option<AssumeSpec>,
    /// Whether the call changed the fake's state (for mutating calls).
    pub(super) applied: bool,
    /// What the caller was told: `ok`, or the error.
    pub(super) answer: Option<String>,
}

impl Call {
    pub(super) fn new(op: Op) -> Call {
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
pub(super) enum ExecPlan {
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
pub(super) enum Action {
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
pub(super) struct Rule {
    pub(super) op: Op,
    pub(super) skip: usize,
    pub(super) times: Option<usize>,
    pub(super) action: Action,
}

/// The owned part of an action, taken out of the script for one call.
pub(super) enum Planned {
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
pub(super) struct FakeStack {
    pub(super) id: String,
    pub(super) status: String,
    pub(super) reason: Option<String>,
    pub(super) outputs: Vec<(String, String, Option<String>)>,
    pub(super) tags: Vec<(String, String)>,
    /// Oldest first.
    pub(super) events: Vec<StackEvent>,
    /// Stages still to come, one per DescribeStacks.
    pub(super) pending: VecDeque<Stage>,
    /// The ClientRequestToken of the operation in progress.
    pub(super) token: Option<String>,
    /// Bumped by every change of the stack (its LastUpdatedTime, in seconds).
    pub(super) changed: i64,
}

#[derive(Debug, Clone)]
pub(super) struct FakeChangeSet {
    pub(super) arn: String,
    pub(super) name: String,
    pub(super) stack: String,
    pub(super) kind: ChangeSetKind,
    pub(super) token: String,
    pub(super) status: String,
    pub(super) execution_status: String,
    /// DescribeChangeSet calls still answered CREATE_IN_PROGRESS.
    pub(super) describes_left: usize,
    pub(super) changes: Vec<ResourceChange>,
    pub(super) tags: Vec<(String, String)>,
    /// CloudFormation removes a stack's other change sets when one is executed.
    pub(super) deleted: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Ev {
    pub(super) logical_id: String,
    pub(super) resource_type: String,
    pub(super) status: String,
    pub(super) reason: Option<String>,
}

pub(super) fn ev(logical_id: &str, resource_type: &str, status: &str, reason: Option<&str>) -> Ev {
    Ev {
        logical_id: logical_id.into(),
        resource_type: resource_type.into(),
        status: status.into(),
        reason: reason.map(str::to_string),
    }
}

/// One step of a stack operation, applied at one DescribeStacks.
#[derive(Debug, Clone)]
pub(super) struct Stage {
    pub(super) status: String,
    pub(super) reason: Option<String>,
    pub(super) events: Vec<Ev>,
    pub(super) outputs: Option<Vec<(String, String, Option<String>)>>,
    pub(super) change_set_execution: Option<&'static str>,
}

/// CloudFormation's side: stacks, change sets, executions.
pub(super) struct World {
    pub(super) stacks: BTreeMap<String, FakeStack>,
    pub(super) change_sets: Vec<FakeChangeSet>,
    /// (change-set ARN, ClientRequestToken) of every applied ExecuteChangeSet.
    pub(super) executions: Vec<(String, String)>,
    pub(super) plan: ExecPlan,
    /// How many DescribeChangeSet calls a new change set answers CREATE_IN_PROGRESS.
    pub(super) change_set_ready_after: usize,
    pub(super) clock0: DateTime<Utc>,
    pub(super) tick: i64,
}

pub(super) const STACK_TYPE: &str = "AWS::CloudFormation::Stack";

pub(super) fn valid_token(t: &str) -> bool {
    (1..=128).contains(&t.len())
        && t.as_bytes()[0].is_ascii_alphanumeric()
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(super) fn token_error(t: &str) -> DeployError {
    DeployError::Other(format!(
        "ValidationError: 1 validation error detected: Value '{t}' at 'clientRequestToken' failed \
         to satisfy constraint: Member must satisfy regular expression pattern: \
         [a-zA-Z0-9][-a-zA-Z0-9]*"
    ))
}

pub(super) fn name_not_arn() -> DeployError {
    // What CloudFormation answers to DescribeChangeSet/ExecuteChangeSet with a bare change-set
    // name and no StackName.
    DeployError::Other(
        "ValidationError: StackName must be specified if ChangeSetName is not specified as an ARN."
            .into(),
    )
}

pub(super) fn updatable(status: &str) -> bool {
    matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "UPDATE_ROLLBACK_COMPLETE" | "IMPORT_COMPLETE"
    )
}

impl World {
    pub(super) fn new() -> World {
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

    pub(super) fn now(&mut self) -> DateTime<Utc> {
        self.tick += 1;
        self.clock0 + chrono::Duration::milliseconds(self.tick)
    }

    pub(super) fn push_events(&mut self, stack: &str, evs: &[Ev], token: Option<String>) {
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
    pub(super) fn seed_stack(&mut self, name: &str, status: &str, team: &str) {
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
                changed: 1,
            },
        );
    }

    pub(super) fn create_change_set(
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
                                changed: 1,
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

    pub(super) fn change_set_mut(&mut self, id: &str) -> Result<&mut FakeChangeSet, DeployError> {
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

    pub(super) fn describe_change_set(&mut self, id: &str) -> Result<ChangeSetState, DeployError> {
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
    pub(super) fn foreign_update(&mut self, stack: &str) {
        if let Some(s) = self.stacks.get_mut(stack) {
            s.changed += 1;
        }
        for cs in self.change_sets.iter_mut().filter(|c| c.stack == stack) {
            if cs.execution_status == "AVAILABLE" {
                cs.execution_status = "OBSOLETE".into();
            }
        }
    }

    pub(super) fn execute(&mut self, id: &str, token: &str) -> Result<(), DeployError> {
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
        if let Some(s) = self.stacks.get_mut(&stack) {
            s.changed += 1;
        }
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

    pub(super) fn describe_stack(&mut self, name: &str) -> Option<StackState> {
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
            parameters: vec![],
            last_changed: DateTime::<Utc>::from_timestamp(1_700_000_000 + s.changed, 0),
        })
    }

    pub(super) fn stack_events(&self, name: &str) -> Result<Vec<StackEvent>, DeployError> {
        let s = self.stacks.get(name).ok_or_else(|| {
            DeployError::NotFound(format!("ValidationError: Stack [{name}] does not exist"))
        })?;
        Ok(s.events.iter().rev().cloned().collect())
    }

    /// Change sets created for `stack` (deleted or not).
    pub(super) fn change_sets_of(&self, stack: &str) -> Vec<FakeChangeSet> {
        self.change_sets
            .iter()
            .filter(|c| c.stack == stack)
            .cloned()
            .collect()
    }
}

pub(super) struct Inner {
    pub(super) world: World,
    pub(super) calls: Vec<Call>,
    pub(super) rules: Vec<Rule>,
}

impl Inner {
    /// Takes the action the script has for this call of `op`, if any. `Mutate` runs here.
    pub(super) fn plan(&mut self, op: Op) -> Option<Planned> {
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
pub(super) struct FakeAws {
    pub(super) inner: Arc<Mutex<Inner>>,
}

/// A CloudFormation session in one account and region, as `connect` returns it.
pub(super) struct FakeSession {
    pub(super) aws: FakeAws,
    pub(super) account: String,
    pub(super) region: String,
}

impl FakeAws {
    pub(super) fn new() -> FakeAws {
        FakeAws {
            inner: Arc::new(Mutex::new(Inner {
                world: World::new(),
                calls: Vec::new(),
                rules: Vec::new(),
            })),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn script(&self, op: Op, skip: usize, times: Option<usize>, action: Action) {
        self.lock().rules.push(Rule {
            op,
            skip,
            times,
            action,
        });
    }

    /// The next call of `op` fails with `error` (nothing applied).
    pub(super) fn fail_next(&self, op: Op, error: DeployError) {
        self.script(op, 0, Some(1), Action::Fail(error));
    }

    /// Every call of `op` fails with `error`.
    pub(super) fn fail_always(&self, op: Op, error: DeployError) {
        self.script(op, 0, None, Action::Fail(error));
    }

    /// The next call of `op` is applied, and its answer lost (`Transient`).
    pub(super) fn drop_next_response(&self, op: Op) {
        self.script(op, 0, Some(1), Action::ApplyThenDrop);
    }

    /// The next call of `op` never answers; notified when it hangs.
    pub(super) fn hang_next(&self, op: Op, apply: bool) -> Arc<Notify> {
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
    pub(super) fn pause_before(&self, op: Op, skip: usize) -> (Arc<Notify>, Arc<Notify>) {
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
    pub(super) fn before(&self, op: Op, skip: usize, f: impl FnMut(&mut World) + Send + 'static) {
        self.script(op, skip, Some(1), Action::Mutate(Box::new(f)));
    }

    pub(super) fn world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.lock().world)
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub(super) fn count(&self, op: Op) -> usize {
        self.calls().iter().filter(|c| c.op == op).count()
    }

    /// Runs one call: logs it, applies the script, then `apply` on the world.
    pub(super) async fn call<T: Send>(
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

    async fn delete_change_set(&self, change_set_arn: &str) -> Result<(), DeployError> {
        let mut call = Call::new(Op::DeleteChangeSet);
        call.change_set = Some(change_set_arn.to_string());
        let id = change_set_arn.to_string();
        self.aws
            .call(call, move |w| {
                if let Some(cs) = w.change_sets.iter_mut().find(|c| c.arn == id) {
                    cs.deleted = true;
                }
                Ok(())
            })
            .await
    }

    async fn get_template(&self, stack_name: &str) -> Result<Option<String>, DeployError> {
        let mut call = Call::new(Op::GetTemplate);
        call.stack = Some(stack_name.to_string());
        let name = stack_name.to_string();
        self.aws
            .call(call, move |w| {
                Ok(w.stacks.get(&name).map(|_| "{\"Resources\": {}}".to_string()))
            })
            .await
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
