//! `select!`: parse the branches and generate the two-phase select (the runtime side
//! is `gort_executor::chan::select`).

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Pat, Token};

pub(crate) struct SelectInput {
    branches: Vec<Branch>,
    default: Option<Expr>,
}

struct Branch {
    pat: Pat,
    expr: Expr,
    body: Expr,
}

/// Branches per select: the runtime keeps the enabled set in a `u64`.
const MAX_BRANCHES: usize = 64;

impl Parse for SelectInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut branches = Vec::new();
        let mut default = None;
        while !input.is_empty() {
            if input.peek(syn::Ident) && input.peek2(Token![=>]) {
                let ident: syn::Ident = input.parse()?;
                if ident != "default" {
                    return Err(syn::Error::new(
                        ident.span(),
                        "expected `pattern = future => body` or `default => body`",
                    ));
                }
                if default.is_some() {
                    return Err(syn::Error::new(
                        ident.span(),
                        "select! takes one `default` branch",
                    ));
                }
                input.parse::<Token![=>]>()?;
                default = Some(parse_body(input)?);
                continue;
            }
            let pat = Pat::parse_single(input)?;
            input.parse::<Token![=]>()?;
            let expr = Expr::parse_without_eager_brace(input)?;
            input.parse::<Token![=>]>()?;
            let body = parse_body(input)?;
            branches.push(Branch { pat, expr, body });
        }
        if branches.is_empty() {
            return Err(input.error("select! needs at least one `pattern = future => body` branch"));
        }
        if branches.len() > MAX_BRANCHES {
            return Err(input.error(format!("select! takes at most {MAX_BRANCHES} branches")));
        }
        Ok(SelectInput { branches, default })
    }
}

/// A branch body: an expression, then a comma unless it is a block.
fn parse_body(input: ParseStream<'_>) -> syn::Result<Expr> {
    let body: Expr = input.parse()?;
    let is_block = matches!(body, Expr::Block(_));
    if input.peek(Token![,]) {
        input.parse::<Token![,]>()?;
    } else if !is_block && !input.is_empty() {
        return Err(input.error("expected `,` after a select! branch"));
    }
    Ok(body)
}

pub(crate) fn expand(input: SelectInput, krate: TokenStream) -> TokenStream {
    let n = input.branches.len();
    let has_default = input.default.is_some();
    let s = quote!(#krate::__private::select);
    let variants: Vec<_> = (0..n).map(|i| format_ident!("B{}", i)).collect();
    let tys: Vec<_> = (0..n).map(|i| format_ident!("T{}", i)).collect();
    let wraps: Vec<_> = (0..n).map(|i| format_ident!("__gort_w{}", i)).collect();
    let brs: Vec<_> = (0..n).map(|i| format_ident!("__gort_b{}", i)).collect();

    let setup = input.branches.iter().enumerate().map(|(i, b)| {
        let (w, br, expr) = (&wraps[i], &brs[i], &b.expr);
        quote! {
            let #w = #s::Wrap::new(#expr);
            let mut #br = ::core::pin::pin!((&&#w).__gort_select_branch());
        }
    });
    let drive_arms = input.branches.iter().enumerate().map(|(i, b)| {
        let (br, pat, v) = (&brs[i], &b.pat, &variants[i]);
        quote! {
            #i => #s::drive(#br.as_mut(), __gort_act, __gort_cx).map(|__gort_v| {
                #[allow(unused_variables, unused_mut, unreachable_patterns, clippy::redundant_pattern_matching)]
                let __gort_ok = match &__gort_v { #pat => true, _ => false };
                if __gort_ok {
                    ::core::option::Option::Some(__GortOut::#v(__gort_v))
                } else {
                    ::core::option::Option::None
                }
            }),
        }
    });
    let result_arms = input.branches.iter().enumerate().map(|(i, b)| {
        let (pat, body, v) = (&b.pat, &b.body, &variants[i]);
        quote! { ::core::option::Option::Some(__GortOut::#v(#pat)) => { #body } }
    });
    let default_arm = match &input.default {
        Some(body) => quote! { ::core::option::Option::None => { #body } },
        None => quote! {
            ::core::option::Option::None => ::core::unreachable!("select! without default returned no branch"),
        },
    };

    quote! {{
        #[allow(unused_imports)]
        use #s::{IsChanOp as _, IsFuture as _};
        #(#setup)*
        enum __GortOut<#(#tys),*> { #(#variants(#tys)),* }
        let mut __gort_sel = #s::Select::new(#n, #has_default);
        let __gort_out = ::core::future::poll_fn(|__gort_cx| {
            __gort_sel.poll(__gort_cx, |__gort_i, __gort_act, __gort_cx| match __gort_i {
                #(#drive_arms)*
                _ => ::core::unreachable!("select! branch index out of range"),
            })
        })
        .await;
        #[allow(unreachable_patterns)]
        match __gort_out {
            #(#result_arms)*
            #default_arm
            _ => ::core::unreachable!("a branch result matched its pattern when checked"),
        }
    }}
}
