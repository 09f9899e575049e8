//! The settings of `serve` and `config check` from their three layers, for every flag alike:
//! the command line over the environment over the `--config` file over the defaults. A file's
//! values become the flags' defaults, so clap itself keeps that order; each value is then
//! parsed by its flag's own parser one by one, so that every bad value is reported (clap stops
//! at the first), and the settings that parse are checked as a whole (`ServeSettings::problems`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::{BoolishValueParser, TypedValueParser, ValueParser};
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::config_file::{self, FileValue, Place};
use crate::settings::{Cli, Command as Subcommand, ConfigCommand};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    Environment(String),
    File(Place),
    Default,
    Unset,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CommandLine => f.write_str("command line"),
            Self::Environment(name) => write!(f, "environment {name}"),
            Self::File(place) => write!(f, "file {place}"),
            Self::Default => f.write_str("default"),
            Self::Unset => f.write_str("unset"),
        }
    }
}

/// One setting as it is in force.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The long flag name, which is also the file's key.
    pub name: String,
    /// As given (the text a flag takes); `None` when unset.
    pub value: Option<String>,
    pub source: Source,
    /// Shown masked: its environment variable's value is hidden from `--help` too.
    pub secret: bool,
}

/// The parsed command line with every setting and its source.
#[derive(Debug)]
pub struct Effective {
    pub cli: Cli,
    pub settings: Vec<Setting>,
}

/// Whether `args` run a command that takes `--config` (`serve`, `config check`), so that they
/// are resolved here rather than by a plain parse.
pub fn takes_config_file(args: &[OsString]) -> bool {
    let path = subcommand_path(&Cli::command(), args);
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    matches!(path.as_slice(), ["serve"] | ["config", "check"])
}

/// The settings of `args` (the program name first), or every problem, one line each. Help and
/// version requests print and exit, as a plain parse would.
pub fn resolve(args: &[OsString]) -> Result<Effective, Vec<String>> {
    let real = Cli::command();
    if let Err(error) = real.clone().try_get_matches_from(args) {
        match error.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => error.exit(),
            // Each value is checked below, and a flag's partner may be in the file.
            ErrorKind::ValueValidation
            | ErrorKind::InvalidValue
            | ErrorKind::MissingRequiredArgument => {}
            _ => return Err(vec![one_line(&error)]),
        }
    }
    let path = subcommand_path(&real, args);
    let no_file = BTreeMap::new();
    let matches = relaxed(&real, &path, &no_file)
        .try_get_matches_from(args)
        .map_err(|error| vec![one_line(&error)])?;
    let leaf = leaf_matches(&matches, &path);
    let mut problems = Vec::new();
    let config_path = leaf
        .get_raw("config")
        .and_then(|mut values| values.next())
        .map(PathBuf::from);
    // A file that cannot be read is reported beside what else is wrong.
    let file = match &config_path {
        None => BTreeMap::new(),
        Some(config) => match config_file::read(config) {
            Ok(values) => known_keys(&real, &path, config, values, &mut problems),
            Err(found) => {
                problems.extend(found);
                BTreeMap::new()
            }
        },
    };
    let matches = relaxed(&real, &path, &file)
        .try_get_matches_from(args)
        .map_err(|error| vec![one_line(&error)])?;
    let leaf = leaf_matches(&matches, &path);

    let checker = without_environment(real.clone());
    let mut settings = Vec::new();
    // The command line of the values that parse, each once, from whichever layer won.
    let mut given = vec![OsString::from("contactd")];
    given.extend(path.iter().map(OsString::from));
    if let Some(config) = &config_path {
        given.push(format!("--config={}", config.display()).into());
    }
    for arg in settings_of(&real, &path) {
        let id = arg.get_id().as_str();
        let name = arg.get_long().unwrap_or(id).to_owned();
        // A flag given more than once (the previous master keys) is one comma-separated list,
        // as its variable and the file give it.
        let value = leaf
            .get_raw(id)
            .map(|values| {
                values
                    .map(|value| value.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|values| !values.is_empty())
            .map(|values| values.join(","));
        let source = source_of(leaf, &arg, &name, config_path.as_deref(), &file);
        if let Some(text) = value.as_deref().filter(|_| source.is_given()) {
            match value_problem(&checker, &path, &arg, &name, text) {
                Ok(Some(flag)) => given.push(flag),
                Ok(None) => {}
                Err(problem) => problems.push(format!("{source}: {problem}")),
            }
        }
        settings.push(Setting {
            secret: arg.is_hide_env_values_set(),
            name,
            value,
            source,
        });
    }
    let cli = match checker.try_get_matches_from(&given) {
        Ok(matches) => match Cli::from_arg_matches(&matches) {
            Ok(cli) => Some(cli),
            Err(error) => {
                problems.push(one_line(&error));
                None
            }
        },
        Err(error) if is_about_the_value(&error) => None,
        Err(error) => {
            problems.push(one_line(&error));
            None
        }
    };
    if let Some(serve) = cli.as_ref().and_then(serve_settings) {
        problems.extend(serve.problems());
    }
    match cli {
        Some(cli) if problems.is_empty() => Ok(Effective { cli, settings }),
        _ if problems.is_empty() => Err(vec!["the settings do not parse".to_owned()]),
        _ => Err(problems),
    }
}

impl Source {
    /// Whether the value was given (rather than a default the flag parses anyway).
    fn is_given(&self) -> bool {
        !matches!(self, Self::Default | Self::Unset)
    }
}

fn source_of(
    leaf: &ArgMatches,
    arg: &Arg,
    name: &str,
    config_path: Option<&std::path::Path>,
    file: &BTreeMap<String, FileValue>,
) -> Source {
    match leaf.value_source(arg.get_id().as_str()) {
        None => Source::Unset,
        Some(ValueSource::CommandLine) => Source::CommandLine,
        Some(ValueSource::EnvVariable) => Source::Environment(
            arg.get_env()
                .map(|env| env.to_string_lossy().into_owned())
                .unwrap_or_default(),
        ),
        Some(_) => match (config_path, file.get(name)) {
            (Some(path), Some(from_file)) => Source::File(Place {
                path: path.to_path_buf(),
                line: from_file.line,
            }),
            _ => Source::Default,
        },
    }
}

/// One value parsed alone by its flag's parser: the argument that gives it (none for a switch
/// that is off), or what is wrong with it.
fn value_problem(
    checker: &Command,
    path: &[String],
    arg: &Arg,
    name: &str,
    text: &str,
) -> Result<Option<OsString>, String> {
    let flag = format!("--{name}");
    if takes_no_value(arg) {
        return match BoolishValueParser::new().parse_ref(checker, None, text.as_ref()) {
            Ok(on) => Ok(on.then(|| flag.into())),
            Err(_) => Err(format!("{flag}: {text:?} is not true or false")),
        };
    }
    let argument = OsString::from(format!("{flag}={text}"));
    let mut alone = vec![OsString::from("contactd")];
    alone.extend(path.iter().map(OsString::from));
    alone.push(argument.clone());
    match checker.clone().try_get_matches_from(alone) {
        Err(error) if is_about_the_value(&error) => Err(one_line(&error)),
        // Anything else (a flag that needs another) is the whole's to say.
        _ => Ok(Some(argument)),
    }
}

impl Effective {
    /// Every setting as a line of a configuration file, its source beside it; secrets masked.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for setting in &self.settings {
            match &setting.value {
                None => out.push_str(&format!("# {} is unset\n", setting.name)),
                Some(value) => {
                    let shown = if setting.secret {
                        masked(value)
                    } else {
                        value.clone()
                    };
                    out.push_str(&format!(
                        "{} = {}  # {}\n",
                        setting.name,
                        quoted(&shown),
                        setting.source
                    ));
                }
            }
        }
        out
    }
}

/// A secret shown without what makes it one: a URL keeps its scheme, host, port and path (its
/// password, a lone user name, which NATS takes as a token, and its query are masked);
/// anything else is `***` whole.
pub fn masked(value: &str) -> String {
    let Ok(mut url) = url::Url::parse(value) else {
        return "***".to_owned();
    };
    if !url.has_host() {
        return "***".to_owned();
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    } else if !url.username().is_empty() {
        let _ = url.set_username("***");
    }
    if url.query().is_some() {
        url.set_query(Some("***"));
    }
    url.to_string()
}

fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn serve_settings(cli: &Cli) -> Option<&crate::settings::ServeSettings> {
    match &cli.command {
        Subcommand::Serve(serve) | Subcommand::Config(ConfigCommand::Check(serve)) => Some(serve),
        _ => None,
    }
}

/// The names of the subcommands `args` run, outermost first.
fn subcommand_path(command: &Command, args: &[OsString]) -> Vec<String> {
    let mut path = Vec::new();
    let mut current = command;
    for arg in args.iter().skip(1).filter_map(|arg| arg.to_str()) {
        if let Some(sub) = current.find_subcommand(arg) {
            path.push(sub.get_name().to_owned());
            current = sub;
        }
    }
    path
}

fn subcommand<'a>(command: &'a Command, path: &[String]) -> &'a Command {
    path.iter().fold(command, |current, name| {
        current
            .find_subcommand(name)
            .expect("a subcommand of the path")
    })
}

fn leaf_matches<'a>(matches: &'a ArgMatches, path: &[String]) -> &'a ArgMatches {
    path.iter().fold(matches, |current, name| {
        current
            .subcommand_matches(name)
            .expect("the path's matches")
    })
}

/// The settings of the command at `path`: its own flags and the global ones, without help,
/// version and `--config` itself.
fn settings_of(command: &Command, path: &[String]) -> Vec<Arg> {
    let leaf = subcommand(command, path);
    command
        .get_arguments()
        .filter(|arg| arg.is_global_set())
        .chain(leaf.get_arguments())
        .filter(|arg| {
            !matches!(
                arg.get_action(),
                ArgAction::Help | ArgAction::HelpLong | ArgAction::Version
            ) && arg.get_id() != "config"
        })
        .cloned()
        .collect()
}

/// The file's values keyed by flag, each key a flag of the command; the others are problems.
fn known_keys(
    command: &Command,
    path: &[String],
    file: &std::path::Path,
    values: Vec<FileValue>,
    problems: &mut Vec<String>,
) -> BTreeMap<String, FileValue> {
    let flags: Vec<String> = settings_of(command, path)
        .iter()
        .filter_map(|arg| arg.get_long().map(str::to_owned))
        .collect();
    let mut known = BTreeMap::new();
    for value in values {
        if flags.contains(&value.key) {
            known.insert(value.key.clone(), value);
        } else {
            problems.push(format!(
                "{}: unknown setting {:?} (the keys are the long flag names of `contactd serve`)",
                Place {
                    path: file.to_path_buf(),
                    line: value.line
                },
                value.key
            ));
        }
    }
    known
}

/// A copy of the command at `path` that takes every value as text and checks nothing (no
/// parser, no `requires`), the file's values as the defaults: what was given, and where.
fn relaxed(real: &Command, path: &[String], file: &BTreeMap<String, FileValue>) -> Command {
    let loose = |arg: &Arg| {
        let mut copy = Arg::new(arg.get_id().clone())
            .action(arg.get_action().clone())
            .global(arg.is_global_set());
        if let Some(long) = arg.get_long() {
            copy = copy.long(long.to_owned());
        }
        if let Some(env) = arg.get_env() {
            copy = copy.env(env.to_owned());
        }
        // A switch's text too (its variable's, the file's), which is checked below.
        copy = copy.value_parser(ValueParser::os_string());
        let from_file = arg.get_long().and_then(|long| file.get(long));
        match from_file {
            Some(value) => copy.default_value(value.value.clone()),
            None if takes_no_value(arg) => copy,
            None => copy.default_values(arg.get_default_values().to_vec()),
        }
    };
    let bare = |name: &str| {
        Command::new(name.to_owned())
            .disable_help_flag(true)
            .disable_version_flag(true)
    };
    let mut command = bare(real.get_name());
    for arg in real.get_arguments().filter(|arg| arg.is_global_set()) {
        command = command.arg(loose(arg));
    }
    let leaf = subcommand(real, path);
    let mut inner = bare(leaf.get_name());
    for arg in leaf.get_arguments().filter(|arg| {
        !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpLong | ArgAction::Version
        )
    }) {
        inner = inner.arg(loose(arg));
    }
    for name in path.iter().rev().skip(1) {
        inner = bare(name).subcommand(inner);
    }
    if path.is_empty() {
        command
    } else {
        command.subcommand(inner)
    }
}

fn takes_no_value(arg: &Arg) -> bool {
    !arg.get_action().takes_values()
}

/// The command with no environment variable read: the values are given on its command line.
fn without_environment(command: Command) -> Command {
    command
        .mut_args(|arg| arg.env(None))
        .mut_subcommands(without_environment)
}

fn is_about_the_value(error: &clap::Error) -> bool {
    matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue | ErrorKind::InvalidUtf8
    )
}

/// clap's message on one line: its first paragraph (what is wrong, with the missing flags or
/// the possible values below it) and its tips, without the `error: ` prefix and the usage.
fn one_line(error: &clap::Error) -> String {
    let rendered = error.render().to_string();
    let paragraph: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let mut line = paragraph.join(" ");
    for tip in rendered
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tip: "))
    {
        line = format!("{line} ({tip})");
    }
    line.strip_prefix("error: ").unwrap_or(&line).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_keep_only_what_names_where_they_go() {
        assert_eq!(masked("a-code-secret-of-some-length"), "***");
        assert_eq!(
            masked("postgres://app:hunter2@db:5432/contactd"),
            "postgres://app:***@db:5432/contactd"
        );
        assert_eq!(
            masked("nats://s3cr3t-token@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(
            masked("https://sms.example/hook?key=abc"),
            "https://sms.example/hook?***"
        );
        assert_eq!(masked("smtp://mailpit:1025"), "smtp://mailpit:1025");
    }

    #[test]
    fn only_serve_and_config_check_read_a_file() {
        let args = |list: &[&str]| -> Vec<OsString> {
            std::iter::once("contactd")
                .chain(list.iter().copied())
                .map(OsString::from)
                .collect()
        };
        assert!(takes_config_file(&args(&["serve", "--listen", "x"])));
        assert!(takes_config_file(&args(&["--log-format", "json", "serve"])));
        assert!(takes_config_file(&args(&["config", "check"])));
        assert!(!takes_config_file(&args(&["migrate"])));
        assert!(!takes_config_file(&args(&["probe"])));
    }
}
