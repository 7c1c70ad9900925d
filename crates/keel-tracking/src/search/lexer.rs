//! Turns filter text into tokens, one at a time, so the first error in the
//! text is the one reported.

use super::ast::{is_name_char, is_word_start};
use super::error::FilterError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `==`, rejected with a hint.
    DoubleEq,
    /// `<>`, rejected with a hint.
    LtGt,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum TokenKind {
    /// A bare word: a keyword, an entity, an attribute or `entity.name`.
    /// Its text is the source slice.
    Word,
    /// Text between quotes (`'`, `"` or `` ` ``), with doubled quotes undone.
    Quoted {
        quote: char,
        text: String,
    },
    Number(f64),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(super) struct Token {
    pub kind: TokenKind,
    /// Byte offsets of the token in the source.
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'a>(&self, src: &'a str) -> &'a str {
        src.get(self.start..self.end).unwrap_or("")
    }

    pub fn is_keyword(&self, src: &str, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text(src).eq_ignore_ascii_case(keyword)
    }
}

pub(super) struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_char_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump_char(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn token(&self, kind: TokenKind, start: usize) -> Token {
        Token {
            kind,
            start,
            end: self.pos,
        }
    }

    pub fn next_token(&mut self) -> Result<Token, FilterError> {
        while self.peek_char().is_some_and(char::is_whitespace) {
            self.bump_char();
        }
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok(self.token(TokenKind::Eof, start));
        };
        let next = self.peek_char_at(1);
        let starts_number = c.is_ascii_digit()
            || (c == '.' && next.is_some_and(|n| n.is_ascii_digit()))
            || (c == '-'
                && (next.is_some_and(|n| n.is_ascii_digit())
                    || (next == Some('.')
                        && self.peek_char_at(2).is_some_and(|n| n.is_ascii_digit()))));
        if starts_number {
            return self.number(start);
        }
        if is_word_start(c) {
            while self.peek_char().is_some_and(is_name_char) {
                self.bump_char();
            }
            return Ok(self.token(TokenKind::Word, start));
        }
        self.bump_char();
        let kind = match c {
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            ',' => TokenKind::Comma,
            '\'' | '"' | '`' => return self.quoted(c, start),
            '=' => TokenKind::Op(self.second('=', CmpOp::DoubleEq, CmpOp::Eq)),
            '>' => TokenKind::Op(self.second('=', CmpOp::Ge, CmpOp::Gt)),
            '<' => {
                if self.peek_char() == Some('>') {
                    self.bump_char();
                    TokenKind::Op(CmpOp::LtGt)
                } else {
                    TokenKind::Op(self.second('=', CmpOp::Le, CmpOp::Lt))
                }
            }
            '!' if self.peek_char() == Some('=') => {
                self.bump_char();
                TokenKind::Op(CmpOp::Ne)
            }
            _ => {
                let near = self.src.get(start..self.pos).unwrap_or("");
                let hint = match c {
                    '!' => "; did you mean '!='?",
                    '&' => "; use AND",
                    '|' => "; use OR",
                    _ => "",
                };
                return Err(FilterError::new(
                    start,
                    near,
                    format!("unexpected character '{c}'{hint}"),
                ));
            }
        };
        Ok(self.token(kind, start))
    }

    /// Consumes `c` if it comes next, choosing between two operators.
    fn second(&mut self, c: char, with: CmpOp, without: CmpOp) -> CmpOp {
        if self.peek_char() == Some(c) {
            self.bump_char();
            with
        } else {
            without
        }
    }

    fn quoted(&mut self, quote: char, start: usize) -> Result<Token, FilterError> {
        let mut text = String::new();
        loop {
            match self.bump_char() {
                None => {
                    let what = if quote == '`' { "quoted key" } else { "string" };
                    return Err(FilterError::new(
                        start,
                        self.src.get(start..).unwrap_or(""),
                        format!("unterminated {what}: missing closing {quote}"),
                    ));
                }
                Some(c) if c == quote => {
                    if self.peek_char() == Some(quote) {
                        self.bump_char();
                        text.push(quote);
                    } else {
                        return Ok(self.token(TokenKind::Quoted { quote, text }, start));
                    }
                }
                Some(c) => text.push(c),
            }
        }
    }

    fn eat_digits(&mut self) -> usize {
        let mut n = 0;
        while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
            self.bump_char();
            n += 1;
        }
        n
    }

    /// `-? (digits [. digits*] | . digits) ([eE] [+-]? digits)?`
    fn number(&mut self, start: usize) -> Result<Token, FilterError> {
        if self.peek_char() == Some('-') {
            self.bump_char();
        }
        self.eat_digits();
        if self.peek_char() == Some('.') {
            self.bump_char();
            self.eat_digits();
        }
        if matches!(self.peek_char(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_char_at(1), Some('+' | '-')));
            if self
                .peek_char_at(1 + sign)
                .is_some_and(|c| c.is_ascii_digit())
            {
                self.bump_char();
                if sign == 1 {
                    self.bump_char();
                }
                self.eat_digits();
            }
        }
        let number_end = self.pos;
        if self.peek_char().is_some_and(is_name_char) {
            while self.peek_char().is_some_and(is_name_char) {
                self.bump_char();
            }
            let near = self.src.get(start..self.pos).unwrap_or("");
            return Err(FilterError::new(
                start,
                near,
                format!("invalid number '{near}'"),
            ));
        }
        let text = self.src.get(start..number_end).unwrap_or("");
        match text.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(self.token(TokenKind::Number(n), start)),
            _ => Err(FilterError::new(
                start,
                text,
                format!("number '{text}' is out of range"),
            )),
        }
    }
}
