//! Page requests of every List call: defaults, limits and offsets.

use contactd_domain::{Field, ParameterError};

/// A validated page request: 1-based page number, size within the list's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub number: u32,
    pub size: u32,
}

impl PageRequest {
    /// `0` means the default; negative numbers and sizes above `max_size` are invalid.
    pub fn parse(
        number: i64,
        size: i64,
        default_size: u32,
        max_size: u32,
    ) -> Result<Self, ParameterError> {
        let number = match number {
            0 => 1,
            n if n > 0 => {
                u32::try_from(n).map_err(|_| ParameterError::Invalid(Field::PageNumber))?
            }
            _ => return Err(ParameterError::Invalid(Field::PageNumber)),
        };
        let size = match size {
            0 => default_size,
            s if s > 0 && s <= i64::from(max_size) => s as u32,
            _ => return Err(ParameterError::Invalid(Field::PageSize)),
        };
        Ok(Self { number, size })
    }

    /// How many rows come before this page.
    pub fn offset(self) -> u64 {
        u64::from(self.number - 1) * u64::from(self.size)
    }
}

/// One page of results and the total they were taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub request: PageRequest,
    pub total_count: u64,
    pub items: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_the_defaults() {
        assert_eq!(
            PageRequest::parse(0, 0, 10, 100),
            Ok(PageRequest {
                number: 1,
                size: 10
            })
        );
    }

    #[test]
    fn negative_or_oversized_values_are_invalid() {
        assert_eq!(
            PageRequest::parse(-1, 10, 10, 100),
            Err(ParameterError::Invalid(Field::PageNumber))
        );
        assert_eq!(
            PageRequest::parse(1, -1, 10, 100),
            Err(ParameterError::Invalid(Field::PageSize))
        );
        assert_eq!(
            PageRequest::parse(1, 101, 10, 100),
            Err(ParameterError::Invalid(Field::PageSize))
        );
        assert_eq!(
            PageRequest::parse(1, 100, 10, 100),
            Ok(PageRequest {
                number: 1,
                size: 100
            })
        );
    }

    #[test]
    fn offsets_do_not_overflow() {
        let last = PageRequest::parse(i64::from(i32::MAX), 100, 10, 100).unwrap();
        assert_eq!(last.offset(), (i32::MAX as u64 - 1) * 100);
    }
}
