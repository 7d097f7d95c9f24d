//! Password reset (a single-use token by mail, 30 minutes; the reset ends every session) and
//! password change (needs the current password; ends the other sessions).

use curanet_storage::CodePurpose;
use serde_json::json;

use super::mail::Mail;
use super::register::require_full;
use super::secrets::check_policy;
use super::{AccountError, Accounts, Caller, Identifier, MICROS, policy};

impl Accounts {
    /// Mails a reset link when the identifier has an account with an email address. Answers the
    /// same, at the same speed, whether or not it does: the mail goes out in the background.
    pub async fn forgot_password(
        &self,
        identifier: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        let account = match Identifier::parse(identifier) {
            Some(Identifier::Email(e)) => self.store.get_account_by_email(&e).await?,
            Some(Identifier::Phone(p)) => self.store.get_account_by_phone(&p).await?,
            None => None,
        };
        let Some(account) = account else {
            return Ok(());
        };
        let Some(email) = account.email.clone() else {
            return Ok(());
        };
        if !self.may_send(&account.id, now).await? {
            return Ok(());
        }
        let token = self
            .issue_code(&account.id, CodePurpose::PasswordReset, now)
            .await?;
        self.event(
            "password_reset_requested",
            Some(&account.id),
            ip,
            json!({}),
            now,
        )
        .await;
        let issuer = &self.authority.endpoints().issuer;
        let mail = Mail {
            to: email,
            subject: "Reset your CuraNet password".into(),
            body: format!(
                "Someone asked to reset the password of your CuraNet account ({issuer}).\n\n\
                 To choose a new password, enter this code in the CuraNet app:\n\nCode: {token}\n\n\
                 It works once, for {} minutes. Resetting signs you out everywhere. If it was not \
                 you, ignore this message: your password stays as it is.\n",
                policy::RESET_TOKEN_SECONDS / 60
            ),
        };
        let mailer = self.mailer.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(mail).await {
                tracing::error!(error = %e, "could not send a password reset mail");
            }
        });
        Ok(())
    }

    /// Sets a new password with a reset token; every session of the account ends and the lock
    /// is lifted.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        // The rules that need no account first, so a short password does not spend the token.
        check_policy(new_password, None)?;
        let account_id = self
            .take_token(CodePurpose::PasswordReset, token, now)
            .await?;
        let account = self.account(&account_id).await?;
        check_policy(new_password, account.email.as_deref())?;
        let hash = self.hash_password(new_password).await?;
        self.store
            .set_password_hash(&account.id, &hash, now * MICROS)
            .await?;
        let ended = self
            .store
            .revoke_sessions(&account.id, None, now * MICROS)
            .await?;
        self.store
            .reset_failed_logins(&account.id, now * MICROS)
            .await?;
        self.event(
            "password_reset",
            Some(&account.id),
            ip,
            json!({"sessions_revoked": ended}),
            now,
        )
        .await;
        Ok(())
    }

    /// Changes the password after checking the current one; the other sessions end (all of
    /// them unless `keep_session` names one of the caller's). A wrong current password counts
    /// as a failed sign-in.
    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new_password: &str,
        keep_session: Option<&str>,
        ip: Option<&str>,
        now: i64,
    ) -> Result<(), AccountError> {
        require_full(caller)?;
        let account = self.account(&caller.account_id).await?;
        if let Some(until) = account.locked_until
            && until > now * MICROS
        {
            return Err(AccountError::Locked {
                retry_after: (until - now * MICROS + MICROS - 1) / MICROS,
            });
        }
        if !self.password_matches(Some(&account), current).await? {
            self.fail(&account.id, Some(&account), ip, "change_password", now)
                .await;
            return Err(AccountError::InvalidCredentials);
        }
        check_policy(new_password, account.email.as_deref())?;
        if new_password == current {
            return Err(AccountError::InvalidInput(
                "the new password must differ from the current one".into(),
            ));
        }
        let hash = self.hash_password(new_password).await?;
        self.store
            .set_password_hash(&account.id, &hash, now * MICROS)
            .await?;
        let ended = self
            .store
            .revoke_sessions(&account.id, keep_session, now * MICROS)
            .await?;
        self.event(
            "password_changed",
            Some(&account.id),
            ip,
            json!({"sessions_revoked": ended}),
            now,
        )
        .await;
        Ok(())
    }
}
