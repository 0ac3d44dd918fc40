//! The refresh in flight as its callers see it: a ticket in the published snapshot (of the
//! tokens, or of the AWS credentials) that they wait on instead of asking the profile's task.

use tokio::sync::{oneshot, watch};

use super::error::{AttemptFailure, AttemptOutcome};

/// The outcome of the refresh in flight, for every caller that joins it by reading the
/// snapshot. The profile's task holds the [`watch::Sender`] in its in-flight refresh and sets the
/// outcome once, when the refresh (and the unattended login after it, if any) ends; a task that
/// ends without setting it (the daemon stopping) drops the sender, which waiters read as
/// shutting down. So 1,000 callers on an expired token are 1,000 waits on one value, not 1,000
/// commands in the mailbox and 1,000 replies.
#[derive(Debug, Clone)]
pub(crate) struct RefreshTicket(watch::Receiver<Option<AttemptOutcome>>);

impl RefreshTicket {
    /// A ticket and the sender its outcome is set with.
    fn issue() -> (watch::Sender<Option<AttemptOutcome>>, Self) {
        let (sender, receiver) = watch::channel(None);
        (sender, Self(receiver))
    }

    /// Waits until the refresh ends, and returns how it ended.
    pub(crate) async fn outcome(&self) -> AttemptOutcome {
        let mut receiver = self.0.clone();
        match receiver.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().unwrap_or(Err(AttemptFailure::ShuttingDown)),
            Err(_) => Err(AttemptFailure::ShuttingDown),
        }
    }
}

/// The answering side of a refresh (or AWS fetch) in flight, held by the profile's task: the
/// callers who asked with a command, and the ticket everybody else reads in the snapshot.
#[derive(Debug)]
pub(crate) struct Waiters {
    asked: Vec<oneshot::Sender<AttemptOutcome>>,
    ticket: watch::Sender<Option<AttemptOutcome>>,
}

impl Waiters {
    /// The waiters of a refresh starting now (`first`: the command that started it, if one
    /// waits), and the ticket to publish.
    pub(crate) fn new(first: Option<oneshot::Sender<AttemptOutcome>>) -> (Self, RefreshTicket) {
        let (ticket, receiver) = RefreshTicket::issue();
        let waiters = Self {
            asked: first.into_iter().collect(),
            ticket,
        };
        (waiters, receiver)
    }

    /// A command that joins the refresh (`None`: nobody waits for it).
    pub(crate) fn add(&mut self, reply: Option<oneshot::Sender<AttemptOutcome>>) {
        self.asked.extend(reply);
    }

    /// Answers everybody with `outcome`.
    pub(crate) fn answer(self, outcome: AttemptOutcome) {
        for waiter in self.asked {
            let _ = waiter.send(outcome.clone());
        }
        self.ticket.send_replace(Some(outcome));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn every_holder_of_a_ticket_gets_the_one_outcome() {
        let (sender, ticket) = RefreshTicket::issue();
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let ticket = ticket.clone();
                tokio::spawn(async move { ticket.outcome().await })
            })
            .collect();
        tokio::task::yield_now().await;
        sender.send_replace(Some(Err(AttemptFailure::Upstream {
            retry_after: Duration::from_secs(7),
            reason: "boom".to_owned(),
        })));
        for waiter in waiters {
            match waiter.await.unwrap() {
                Err(AttemptFailure::Upstream {
                    retry_after,
                    reason,
                }) => {
                    assert_eq!((retry_after.as_secs(), reason.as_str()), (7, "boom"));
                }
                other => panic!("expected the refresh's failure, got {other:?}"),
            }
        }
        // Joined after the end: answered at once, with the same outcome.
        assert!(matches!(
            ticket.outcome().await,
            Err(AttemptFailure::Upstream { .. })
        ));
    }

    #[tokio::test]
    async fn a_ticket_whose_refresh_is_dropped_reads_as_shutting_down() {
        let (sender, ticket) = RefreshTicket::issue();
        let waiter = tokio::spawn({
            let ticket = ticket.clone();
            async move { ticket.outcome().await }
        });
        tokio::task::yield_now().await;
        drop(sender);
        assert!(matches!(
            waiter.await.unwrap(),
            Err(AttemptFailure::ShuttingDown)
        ));
        let (sender, ticket) = RefreshTicket::issue();
        sender.send_replace(Some(Ok(())));
        drop(sender);
        assert!(
            ticket.outcome().await.is_ok(),
            "an outcome set before the end stays"
        );
    }
}
