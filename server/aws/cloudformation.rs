//! CloudFormation in a target account: the [`StackOps`] of a [`CfnSession`].

use aws_sdk_cloudformation::types::{Capability, ChangeSetType, Tag as CfnTag};
use chrono::{DateTime, Utc};

use super::classify::{Op, failed_change_set, map_sdk_error};
use super::{
    CfnSession, ChangeSetInput, ChangeSetKind, ChangeSetState, DeployError, ResourceChange,
    StackEvent, StackOps, StackState,
};

/// Upper bound on result pages followed for one logical read (events, change-set changes).
const MAX_PAGES: usize = 10;

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|s| !s.is_empty()).map(str::to_string)
}

fn to_chrono(t: Option<&aws_sdk_cloudformation::primitives::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

impl StackOps for CfnSession {
    async fn create_change_set(&self, input: ChangeSetInput) -> Result<String, DeployError> {
        let mut req = self
            .client
            .create_change_set()
            .stack_name(&input.stack_name)
            .change_set_name(&input.change_set_name)
            .template_body(&input.template_body)
            .change_set_type(match input.change_set_type {
                ChangeSetKind::Create => ChangeSetType::Create,
                ChangeSetKind::Update => ChangeSetType::Update,
            })
            .client_token(&input.client_token)
            .set_role_arn(input.role_arn.clone());
        for (k, v) in &input.tags {
            req = req.tags(CfnTag::builder().key(k).value(v).build());
        }
        for c in &input.capabilities {
            req = req.capabilities(Capability::from(c.as_str()));
        }
        let out = req
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::CreateChangeSet, e))?;
        non_empty(out.id()).ok_or_else(|| {
            DeployError::Other("CreateChangeSet answered without a change-set id".into())
        })
    }

    async fn describe_change_set(
        &self,
        change_set_arn: &str,
    ) -> Result<ChangeSetState, DeployError> {
        let mut pages = self
            .client
            .describe_change_set()
            .change_set_name(change_set_arn)
            .into_paginator()
            .send();
        let mut state: Option<ChangeSetState> = None;
        let mut read = 0;
        while let Some(page) = pages.next().await {
            let out = page.map_err(|e| map_sdk_error(Op::DescribeChangeSet, e))?;
            let status = out.status().map(|s| s.as_str()).unwrap_or_default();
            if let Some(err) = failed_change_set(status, out.status_reason()) {
                return Err(err);
            }
            let st = state.get_or_insert_with(|| ChangeSetState {
                status: status.to_string(),
                execution_status: out
                    .execution_status()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_default(),
                status_reason: non_empty(out.status_reason()),
                changes: Vec::new(),
            });
            st.changes.extend(
                out.changes()
                    .iter()
                    .filter_map(|c| c.resource_change())
                    .map(|rc| ResourceChange {
                        logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
                        resource_type: rc.resource_type().unwrap_or_default().to_string(),
                        action: rc
                            .action()
                            .map(|a| a.as_str().to_string())
                            .unwrap_or_default(),
                        replacement: rc.replacement().map(|r| r.as_str().to_string()),
                    }),
            );
            read += 1;
            if read >= MAX_PAGES {
                break;
            }
        }
        state.ok_or_else(|| DeployError::Other("DescribeChangeSet returned nothing".into()))
    }

    async fn change_set_arn(
        &self,
        stack_name: &str,
        change_set_name: &str,
    ) -> Result<String, DeployError> {
        let out = self
            .client
            .describe_change_set()
            .stack_name(stack_name)
            .change_set_name(change_set_name)
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::DescribeChangeSet, e))?;
        non_empty(out.change_set_id()).ok_or_else(|| {
            DeployError::Other("DescribeChangeSet answered without a change-set id".into())
        })
    }

    async fn execute_change_set(
        &self,
        change_set_arn: &str,
        client_request_token: &str,
    ) -> Result<(), DeployError> {
        self.client
            .execute_change_set()
            .change_set_name(change_set_arn)
            .client_request_token(client_request_token)
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::ExecuteChangeSet, e))?;
        Ok(())
    }

    async fn describe_stack(&self, stack_name: &str) -> Result<Option<StackState>, DeployError> {
        let out = match self
            .client
            .describe_stacks()
            .stack_name(stack_name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                return match map_sdk_error(Op::DescribeStacks, e) {
                    DeployError::NotFound(_) => Ok(None),
                    other => Err(other),
                };
            }
        };
        let Some(stack) = out.stacks().first() else {
            return Ok(None);
        };
        Ok(Some(StackState {
            role_arn: non_empty(stack.role_arn()),
            parameters: stack
                .parameters()
                .iter()
                .map(|p| {
                    (
                        p.parameter_key().unwrap_or_default().to_string(),
                        p.parameter_value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
            last_changed: stack
                .last_updated_time()
                .or(stack.creation_time())
                .map(|t| to_chrono(Some(t))),
            stack_id: stack.stack_id().unwrap_or_default().to_string(),
            status: stack
                .stack_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            status_reason: non_empty(stack.stack_status_reason()),
            outputs: stack
                .outputs()
                .iter()
                .map(|o| {
                    (
                        o.output_key().unwrap_or_default().to_string(),
                        o.output_value().unwrap_or_default().to_string(),
                        non_empty(o.description()),
                    )
                })
                .collect(),
            tags: stack
                .tags()
                .iter()
                .map(|t| {
                    (
                        t.key().unwrap_or_default().to_string(),
                        t.value().unwrap_or_default().to_string(),
                    )
                })
                .collect(),
        }))
    }

    async fn stack_events(&self, stack_name: &str) -> Result<Vec<StackEvent>, DeployError> {
        let mut pages = self
            .client
            .describe_stack_events()
            .stack_name(stack_name)
            .into_paginator()
            .send();
        let mut events = Vec::new();
        let mut read = 0;
        while let Some(page) = pages.next().await {
            let out = page.map_err(|e| map_sdk_error(Op::DescribeStackEvents, e))?;
            events.extend(out.stack_events().iter().map(|e| {
                StackEvent {
                    timestamp: to_chrono(e.timestamp()),
                    logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: e.resource_type().unwrap_or_default().to_string(),
                    status: e
                        .resource_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    reason: non_empty(e.resource_status_reason()),
                    client_request_token: non_empty(e.client_request_token()),
                }
            }));
            read += 1;
            if read >= MAX_PAGES {
                break;
            }
        }
        // AWS already answers newest first; the stable sort keeps that order for equal times.
        events.sort_by_key(|e| std::cmp::Reverse(e.timestamp));
        Ok(events)
    }

    async fn delete_change_set(&self, change_set_arn: &str) -> Result<(), DeployError> {
        match self
            .client
            .delete_change_set()
            .change_set_name(change_set_arn)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_sdk_error(Op::DeleteChangeSet, e) {
                DeployError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn get_template(&self, stack_name: &str) -> Result<Option<String>, DeployError> {
        match self
            .client
            .get_template()
            .stack_name(stack_name)
            .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
            .send()
            .await
        {
            Ok(out) => Ok(out.template_body().map(str::to_string)),
            Err(e) => match map_sdk_error(Op::GetTemplate, e) {
                DeployError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn delete_stack(
        &self,
        stack_name: &str,
        client_request_token: &str,
    ) -> Result<(), DeployError> {
        self.client
            .delete_stack()
            .stack_name(stack_name)
            .client_request_token(client_request_token)
            .send()
            .await
            .map_err(|e| map_sdk_error(Op::DeleteStack, e))?;
        Ok(())
    }
}
