//! The suite's IAM-enforcing emulator (`infra/local/aws/iam_emulator.py`, started by
//! `stack.sh`): the harness sets up with its administrator key, each function runs with its
//! role's temporary credentials (`roles.py load` creates and assumes the template's roles), every
//! call is recorded, and `simulate.mjs` judges the recorded calls against the unmodified
//! policies.
//!
//! How the roles are assumed: `roles.py` creates each role of STACK.json in the emulator under its
//! physical name — its statements' `Resource` widened to `"*"` (moto checks the action only for
//! most services), trusted by the harness's administrator user — and calls `sts:AssumeRole` for
//! each; the function's process gets the session in `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, as Lambda gives a function its role. The
//! harness also polls a function's queues and sends its on-failure destination records with that
//! role (Lambda does both with the execution role), and sends a schedule's dead letters with the
//! schedule's role.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sqs::config::Credentials as SdkCredentials;
use serde_json::Value;

use crate::harness::stack::{StackEnv, repo_dir};

/// A key the emulator knows: an assumed role's session, or the administrator's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// The IAM emulator, as `.stack/env` describes it.
#[derive(Debug, Clone)]
pub struct IamEmulator {
    pub endpoint: String,
    pub admin: Credentials,
    /// Where it records every call (one JSON line each).
    pub calls: PathBuf,
}

impl IamEmulator {
    pub fn from_stack_env() -> IamEmulator {
        let env = StackEnv::get();
        let endpoint = env.var("TIDEMARK_IAM_ENDPOINT_URL").to_owned();
        assert!(
            endpoint.starts_with("http://127.") || endpoint.starts_with("http://[::1]"),
            "the IAM emulator {endpoint} is not on loopback"
        );
        IamEmulator {
            endpoint,
            admin: Credentials {
                access_key_id: env.var("TIDEMARK_IAM_ACCESS_KEY_ID").to_owned(),
                secret_access_key: env.var("TIDEMARK_IAM_SECRET_ACCESS_KEY").to_owned(),
                session_token: None,
            },
            calls: PathBuf::from(env.var("TIDEMARK_IAM_CALLS")),
        }
    }

    /// An SDK configuration for the emulator signing with `credentials` (static: the SDK never
    /// looks for any other credential source).
    pub async fn sdk(&self, credentials: &Credentials) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(super::REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(SdkCredentials::new(
                &credentials.access_key_id,
                &credentials.secret_access_key,
                credentials.session_token.clone(),
                None,
                "tidemark-aws-suite",
            ))
            .load()
            .await
    }

    /// `roles.py load` for a stack: each function's (and each other role's) credentials by
    /// logical id.
    pub fn load_roles(
        &self,
        stack_json: &Path,
        out: &Path,
    ) -> Result<BTreeMap<String, Credentials>, String> {
        let output = std::process::Command::new(super::setup::tools_python())
            .arg(repo_dir().join("infra/local/aws/roles.py"))
            .arg("load")
            .arg("--endpoint")
            .arg(&self.endpoint)
            .arg("--stack")
            .arg(stack_json)
            .arg("--out")
            .arg(out)
            .arg("--access-key-id")
            .arg(&self.admin.access_key_id)
            .arg("--secret-access-key")
            .arg(&self.admin.secret_access_key)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .map_err(|e| format!("cannot run roles.py: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "roles.py load failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        let text = std::fs::read_to_string(out).map_err(|e| e.to_string())?;
        let creds: Value = serde_json::from_str(&text).map_err(|e| format!("CREDS.json: {e}"))?;
        let mut out = BTreeMap::new();
        for (id, c) in creds.as_object().into_iter().flatten() {
            let field = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            out.insert(
                id.clone(),
                Credentials {
                    access_key_id: field("access_key_id"),
                    secret_access_key: field("secret_access_key"),
                    session_token: Some(field("session_token")),
                },
            );
        }
        Ok(out)
    }
}

impl IamEmulator {
    /// A customer-managed KMS key made in the emulator with the administrator's key: its ARN.
    pub fn create_key(&self, description: &str) -> Result<String, String> {
        let script = concat!(
            "import boto3, sys; ",
            "print(boto3.client('kms', endpoint_url=sys.argv[1], region_name=sys.argv[4], ",
            "aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])",
            ".create_key(Description=sys.argv[5])['KeyMetadata']['Arn'])"
        );
        let output = std::process::Command::new(super::setup::tools_python())
            .arg("-c")
            .arg(script)
            .arg(&self.endpoint)
            .arg(&self.admin.access_key_id)
            .arg(&self.admin.secret_access_key)
            .arg(super::REGION)
            .arg(description)
            .output()
            .map_err(|e| format!("cannot run python: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "kms:CreateKey failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// One deployed stack's documents, for the simulator.
#[derive(Debug, Clone)]
pub struct StackFiles {
    pub stack_json: PathBuf,
    pub creds_json: PathBuf,
}

/// `simulate.mjs` over every recorded call of `stacks`' keys and the `probes` (calls on paths no
/// scenario reaches, JSON lines; see simulate.mjs), with `--necessity` also which statements,
/// actions and resources no call needs: its exit code and its JSON report.
pub fn simulate(
    calls: &Path,
    stacks: &[StackFiles],
    probes: Option<&Path>,
    necessity: bool,
) -> Result<(i32, Value), String> {
    let mut command = std::process::Command::new("node");
    command.arg(repo_dir().join("infra/local/aws/simulate.mjs"));
    for s in stacks {
        command
            .arg("--stack")
            .arg(&s.stack_json)
            .arg("--creds")
            .arg(&s.creds_json);
    }
    // Into a file: node's exit cuts a long report piped to stdout short.
    let out = std::env::temp_dir().join(format!(
        "tidemark-simulate-{}-{necessity}.json",
        std::process::id()
    ));
    command.arg("--calls").arg(calls).arg("--out").arg(&out);
    if let Some(probes) = probes {
        command.arg("--probe").arg(probes);
    }
    if necessity {
        command.arg("--necessity");
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run node simulate.mjs: {e}"))?;
    let code = output.status.code().unwrap_or(-1);
    let text = std::fs::read(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let report: Value = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "simulate.mjs (exit {code}) wrote no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    Ok((code, report))
}
