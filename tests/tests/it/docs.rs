//! The docs are tested: every JSON block in the README and infra/DEPLOY.md is a fixture of the parser it stands for —
//! a ```` ```json ```` block is a task spec that must parse and validate, a ```` ```json secret ````
//! block a Secrets Manager secret that the secret store must read (through the emulator) — and
//! the RDS quick start's list of VPC endpoints is the functions' AWS services.

use std::collections::BTreeSet;

use secrecy::ExposeSecret;
use tidemark_core::ports::SecretStore;
use tidemark_tests::harness::aws::sdk_config;
use tidemark_tests::harness::stack::repo_dir;
use tidemark_tests::harness::unique_name;

/// A fenced block whose info string starts with `json`: the info string and the text.
#[derive(Debug, PartialEq)]
pub(crate) struct Block {
    pub info: String,
    pub text: String,
}

/// The fenced blocks of `markdown` whose info string starts with `lang`.
pub(crate) fn blocks(markdown: &str, lang: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut current: Option<Block> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.strip_prefix("```").is_some_and(|i| i.starts_with(lang)) => {
                current = Some(Block {
                    info: l.trim_start_matches('`').trim().to_owned(),
                    text: String::new(),
                });
            }
            (Some(_), l) if l.starts_with("```") => found.extend(current.take()),
            (Some(block), _) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, _) => {}
        }
    }
    found
}

/// The README and the AWS guide it links to (infra/DEPLOY.md), one after the other.
pub(crate) fn readme() -> String {
    ["README.md", "infra/DEPLOY.md"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(repo_dir().join(f)).unwrap_or_else(|e| panic!("read {f}: {e}"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_json_block_in_the_readme_is_a_valid_task_spec_or_a_named_fixture() {
    let blocks = blocks(&readme(), "json");
    assert!(blocks.len() >= 3, "the README's JSON examples");
    for (i, block) in blocks.iter().enumerate() {
        match block.info.as_str() {
            "json" => {
                if let Err(e) = tidemark_core::parse_task_spec(&block.text) {
                    panic!(
                        "README JSON block {i} is not a valid task spec: {e}\n{}",
                        block.text
                    );
                }
            }
            "json secret" => {}
            other => panic!("README JSON block {i} is `{other}`: no parser stands for it"),
        }
    }
}

#[tokio::test]
async fn every_secret_block_in_the_readme_is_read_by_the_secret_store() {
    let secrets: Vec<Block> = blocks(&readme(), "json")
        .into_iter()
        .filter(|b| b.info == "json secret")
        .collect();
    assert!(!secrets.is_empty(), "the RDS quick start shows a secret");
    let sdk = sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let store = tidemark_aws::SecretsManagerStore::new(client.clone(), unique_name("docs/"));
    for block in secrets {
        let created = client
            .create_secret()
            .name(unique_name("readme-secret"))
            .secret_string(&block.text)
            .send()
            .await
            .expect("create the secret");
        let arn = created.arn().expect("its ARN");
        let read = store
            .read_password(arn)
            .await
            .unwrap_or_else(|e| panic!("the README's secret is not readable: {e}\n{}", block.text));
        let json: serde_json::Value = serde_json::from_str(&block.text).expect("JSON");
        assert_eq!(read.password.expose_secret(), json["password"]);
        client
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await
            .expect("delete");
    }
}

#[test]
fn the_block_extractor_finds_blocks_with_their_info() {
    let md = "text\n```json\n{\"a\": 1}\n```\n```sh\nls\n```\n```json secret\n[]\n```\n";
    let found = blocks(md, "json");
    assert_eq!(
        found,
        [
            Block {
                info: "json".into(),
                text: "{\"a\": 1}\n".into()
            },
            Block {
                info: "json secret".into(),
                text: "[]\n".into()
            }
        ]
    );
}

/// The AWS services a function calls, by its IAM statements in template.yaml: the SAM policy
/// templates and the actions' service prefixes. `iam:PassRole` is checked by the scheduler on
/// its side and `kms:Decrypt` made by Secrets Manager: neither is a call of the function's.
fn services_of(template: &str, function: &str) -> BTreeSet<String> {
    let body = block(template, function);
    let policies = body
        .iter()
        .skip_while(|l| l.trim() != "Policies:")
        .map(|l| l.trim().trim_start_matches("- "));
    let mut services = BTreeSet::new();
    for line in policies {
        if line.starts_with("DynamoDB") {
            services.insert("dynamodb".to_owned());
        } else if line.starts_with("SQS") {
            services.insert("sqs".to_owned());
        }
        // The stack's own managed policies the function attaches (`!Ref SecretReadPolicy`, also
        // inside an `!If`): their actions count as the function's.
        for word in line.split(|c: char| !c.is_ascii_alphanumeric()) {
            if word.ends_with("Policy") && word != "Policy" {
                services.extend(managed_policy_services(template, word));
            }
        }
        let actions = line.strip_prefix("Action:").unwrap_or(line).trim();
        if let Some(service) = service_of_action(actions) {
            services.insert(service);
        }
    }
    services
}

/// The lines of the template's resource `id` (empty when there is none).
fn block<'a>(template: &'a str, id: &str) -> Vec<&'a str> {
    let header = format!("  {id}:");
    template
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with("   "))
        .collect()
}

/// The service of an action (`secretsmanager:GetSecretValue`), but not IAM's or KMS's (no
/// endpoint of theirs is called).
fn service_of_action(action: &str) -> Option<String> {
    let (service, rest) = action
        .trim_matches(|c| c == '"' || c == '[')
        .split_once(':')?;
    (!service.is_empty()
        && !service.contains(' ')
        && service.chars().all(|c| c.is_ascii_lowercase())
        && rest.starts_with(|c: char| c.is_ascii_uppercase())
        && !["iam", "kms"].contains(&service))
    .then(|| service.to_owned())
}

/// The services whose actions an `AWS::IAM::ManagedPolicy` of the template allows (its document
/// in YAML or as JSON text).
fn managed_policy_services(template: &str, id: &str) -> BTreeSet<String> {
    let body = block(template, id);
    if !body
        .iter()
        .any(|l| l.trim() == "Type: AWS::IAM::ManagedPolicy")
    {
        return BTreeSet::new();
    }
    body.iter()
        .flat_map(|l| l.split([' ', ',']))
        .filter_map(service_of_action)
        .collect()
}

#[test]
fn the_rds_quick_starts_vpc_endpoints_are_the_services_the_functions_call() {
    let readme = readme();
    let rows: Vec<(String, Vec<String>)> = readme
        .lines()
        .skip_while(|l| *l != "| endpoint | type | called by |")
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let endpoint = cells[1].trim_matches('`').to_owned();
            let by = cells[3].split(':').next().unwrap_or_default();
            let functions = if by == "every function" {
                vec!["*".to_owned()]
            } else {
                by.split(", ").map(str::to_owned).collect()
            };
            (endpoint, functions)
        })
        .collect();
    // One endpoint per SDK client the functions' wiring is built with.
    let manifest = std::fs::read_to_string(repo_dir().join("shared/lambda/Cargo.toml"))
        .expect("shared/lambda/Cargo.toml");
    let clients: BTreeSet<String> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("aws-sdk-"))
        .filter_map(|l| l.split('.').next())
        .map(str::to_owned)
        .collect();
    let listed: BTreeSet<String> = rows.iter().map(|(e, _)| e.clone()).collect();
    assert_eq!(
        listed, clients,
        "the README's endpoints and the functions' SDK clients"
    );
    // Each row names the functions whose IAM statements call that service.
    let template =
        std::fs::read_to_string(repo_dir().join("template.yaml")).expect("template.yaml");
    let functions = [
        ("create-task", "CreateTaskFunction"),
        ("precheck", "PrecheckFunction"),
        ("manage-task", "ManageTaskFunction"),
        ("run-cycle", "RunCycleFunction"),
        ("run-worker", "RunWorkerFunction"),
    ];
    for (endpoint, by) in &rows {
        let calling: Vec<String> = functions
            .iter()
            .filter(|(_, id)| services_of(&template, id).contains(endpoint))
            .map(|(name, _)| (*name).to_owned())
            .collect();
        let expected = if calling.len() == functions.len() {
            vec!["*".to_owned()]
        } else {
            calling
        };
        assert_eq!(by, &expected, "the functions that call {endpoint}");
    }
    for (_, id) in functions {
        let uncovered: Vec<String> = services_of(&template, id)
            .difference(&listed)
            .cloned()
            .collect();
        assert!(
            uncovered.is_empty(),
            "{id} calls {uncovered:?}, which the README does not list"
        );
    }
}
