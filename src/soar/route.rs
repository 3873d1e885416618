//! Phase 5 (spec/soar.md §7): one agent per subgoal — exact id, then capability, then `llm-executor`.

use serde::Serialize;

use crate::soar::agents::{AgentKind, AgentSpec};
use crate::soar::verify::VerifiedPlan;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    Exact,
    Capability,
    Fallback,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub subgoal_index: usize,
    pub requested_agent: String,
    pub agent_id: String,
    pub agent_name: String,
    pub external: bool,
    pub resolution: Resolution,
    /// How `llm-executor` is framed on a fallback ("act as a <hint>").
    pub hint: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Routing {
    /// Exactly one per subgoal, in index order.
    pub assignments: Vec<Assignment>,
    pub fallback_count: u32,
    pub capability_searches: u32,
    pub warnings: Vec<String>,
}

/// Routes every subgoal of a verified plan. Cannot fail: `llm-executor` is always in the registry.
pub fn route(plan: &VerifiedPlan, registry: &[AgentSpec]) -> Routing {
    let mut routing = Routing::default();
    for sg in &plan.plan().subgoals {
        let requested = sg.suggested_agent.clone();
        let exact = registry.iter().find(|a| a.id == requested);
        let (agent, resolution) = match exact {
            Some(a) => (a, Resolution::Exact),
            None => {
                routing.capability_searches += 1;
                let first = requested.split('-').next().unwrap_or_default();
                let by_cap = registry.iter().find(|a| a.capabilities.contains(&requested)).or_else(|| {
                    registry.iter().find(|a| !first.is_empty() && a.capabilities.iter().any(|c| c == first))
                });
                match by_cap {
                    Some(a) => {
                        routing.warnings.push(format!("{}: using '{}' for requested '{requested}'", sg.id, a.id));
                        (a, Resolution::Capability)
                    }
                    None => {
                        routing.fallback_count += 1;
                        routing.warnings.push(format!("{}: no agent for '{requested}'; using llm-executor", sg.id));
                        let executor = registry
                            .iter()
                            .find(|a| a.id == "llm-executor")
                            .expect("llm-executor is always registered");
                        (executor, Resolution::Fallback)
                    }
                }
            }
        };
        let hint = match resolution {
            Resolution::Fallback => Some(sg.specialist_hint.clone().unwrap_or_else(|| requested.clone())),
            _ if agent.id == "llm-executor" => sg.specialist_hint.clone(),
            _ => None,
        };
        routing.assignments.push(Assignment {
            subgoal_index: sg.index,
            requested_agent: requested,
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            external: matches!(agent.kind, AgentKind::External { .. }),
            resolution,
            hint,
        });
    }
    routing
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soar::agents::builtins;
    use crate::soar::types::{Plan, PlanSource, Subgoal};
    use crate::soar::verify::verified;

    #[test]
    fn exact_then_capability_then_fallback() {
        let sg = |i: usize, agent: &str| Subgoal {
            index: i,
            id: format!("sg-{}", i + 1),
            description: "d".into(),
            suggested_agent: agent.into(),
            specialist_hint: (agent == "astrologer").then(|| "a star reader".into()),
            is_critical: false,
            depends_on: vec![],
        };
        let plan = Plan {
            goal: "g".into(),
            subgoals: vec![sg(0, "code-analyzer"), sg(1, "code-reviewer"), sg(2, "astrologer"), sg(3, "docs")],
            expected_tools: vec![],
            waves: vec![],
            attempt: 1,
            source: PlanSource::Llm,
        };
        let r = route(&verified(plan, vec![vec![0, 1, 2, 3]]), &builtins());
        let got: Vec<(&str, Resolution)> = r.assignments.iter().map(|a| (a.agent_id.as_str(), a.resolution)).collect();
        assert_eq!(
            got,
            vec![
                ("code-analyzer", Resolution::Exact),
                ("code-analyzer", Resolution::Capability),
                ("llm-executor", Resolution::Fallback),
                ("documentation-generator", Resolution::Capability),
            ]
        );
        assert_eq!(r.assignments[2].hint.as_deref(), Some("a star reader"));
        assert_eq!(r.fallback_count, 1);
        assert_eq!(r.capability_searches, 3);
        assert!(r.warnings[0].contains("sg-2: using 'code-analyzer' for requested 'code-reviewer'"));
    }
}
