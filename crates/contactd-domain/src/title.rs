//! A contact's job title: one of six fixed values.

use crate::{Field, ParameterError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Title {
    FinanceDirector,
    TechnicalDirector,
    MaintenanceDirector,
    Ceo,
    ProjectDirector,
    Other,
}

impl Title {
    pub const ALL: [Title; 6] = [
        Title::FinanceDirector,
        Title::TechnicalDirector,
        Title::MaintenanceDirector,
        Title::Ceo,
        Title::ProjectDirector,
        Title::Other,
    ];

    /// Exactly one of the contract's values, case included; else `InvalidParameter.Title`.
    pub fn parse(raw: &str) -> Result<Self, ParameterError> {
        Self::ALL
            .into_iter()
            .find(|title| title.as_str() == raw)
            .ok_or(ParameterError::Invalid(Field::Title))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Title::FinanceDirector => "FinanceDirector",
            Title::TechnicalDirector => "TechnicalDirector",
            Title::MaintenanceDirector => "MaintenanceDirector",
            Title::Ceo => "CEO",
            Title::ProjectDirector => "ProjectDirector",
            Title::Other => "Other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_title_round_trips_and_nothing_else_parses() {
        for title in Title::ALL {
            assert_eq!(Title::parse(title.as_str()), Ok(title));
        }
        for bad in ["", "ceo", "Ceo", "Other ", "Boss"] {
            assert_eq!(
                Title::parse(bad),
                Err(ParameterError::Invalid(Field::Title)),
                "{bad}"
            );
        }
    }
}
