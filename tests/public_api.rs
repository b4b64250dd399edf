//! The crate's public API, listed in one place: `api/public-api.txt`. This test reads the
//! source (from `src/lib.rs`, following `mod` declarations; `#[cfg(test)]` code skipped,
//! feature-gated items kept and marked), resolves `pub use` re-exports to the items they
//! name, and lists every item reachable by a public path: modules, types with their public
//! fields and enum variants, traits with their items, functions and methods with their
//! signatures, derives and trait impls of public types. The list must match the file: a
//! public item added, removed or changed fails the test until the file is updated
//! (`UPDATE_PUBLIC_API=1 cargo test --test public_api` rewrites it).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::{Attribute, Fields, ImplItem, Item, TraitItem, UseTree, Visibility};

const LIST: &str = "api/public-api.txt";

/// A module of the crate: its items, its children, and the `cfg` it is compiled under.
struct Module {
    items: Vec<Item>,
    parent: Option<usize>,
    children: HashMap<String, usize>,
    cfg: Option<String>,
}

/// What a name resolves to: a module, or an item (module index, name).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Target {
    Module(usize),
    Item(usize, String),
}

struct Crate {
    modules: Vec<Module>,
}

fn parse_file(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `cfg` of an item (`None` if it has none), or `Err` for test-only code.
fn cfg_of(attrs: &[Attribute]) -> Result<Option<String>, ()> {
    let mut cfg = None;
    for a in attrs.iter().filter(|a| a.path().is_ident("cfg")) {
        let text = tidy(a.meta.require_list().map_err(|_| ())?.tokens.clone());
        if text == "test" {
            return Err(());
        }
        cfg = Some(text);
    }
    Ok(cfg)
}

fn hidden(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("doc")
            && a.meta
                .require_list()
                .is_ok_and(|l| tidy(l.tokens.clone()) == "hidden")
    })
}

impl Crate {
    fn load(src: &Path) -> Crate {
        let mut c = Crate {
            modules: Vec::new(),
        };
        c.load_module(parse_file(&src.join("lib.rs")).items, src, None, None);
        c
    }

    /// Adds a module of `items`, whose child modules' files are in `dir`.
    fn load_module(
        &mut self,
        items: Vec<Item>,
        dir: &Path,
        parent: Option<usize>,
        cfg: Option<String>,
    ) -> usize {
        let id = self.modules.len();
        self.modules.push(Module {
            items: Vec::new(),
            parent,
            children: HashMap::new(),
            cfg: cfg.clone(),
        });
        let mut kept = Vec::new();
        for item in items {
            let Ok(item_cfg) = cfg_of(attrs_of(&item)) else {
                continue;
            };
            if let Item::Mod(m) = &item {
                let name = m.ident.to_string();
                let cfg = item_cfg.or_else(|| cfg.clone());
                let child = match &m.content {
                    Some((_, inline)) => {
                        self.load_module(inline.clone(), &dir.join(&name), Some(id), cfg)
                    }
                    None => {
                        let file = dir.join(format!("{name}.rs"));
                        let (file, child_dir) = if file.exists() {
                            (file, dir.join(&name))
                        } else {
                            (dir.join(&name).join("mod.rs"), dir.join(&name))
                        };
                        self.load_module(parse_file(&file).items, &child_dir, Some(id), cfg)
                    }
                };
                self.modules[id].children.insert(name, child);
            }
            kept.push(item);
        }
        self.modules[id].items = kept;
        id
    }

    /// What `name` means in module `m` (its child modules, items and imports).
    fn resolve_name(&self, m: usize, name: &str, depth: usize) -> Option<Target> {
        if depth > 32 {
            return None;
        }
        let module = &self.modules[m];
        if let Some(&child) = module.children.get(name) {
            return Some(Target::Module(child));
        }
        if module
            .items
            .iter()
            .any(|i| ident_of(i).as_deref() == Some(name))
        {
            return Some(Target::Item(m, name.to_string()));
        }
        for item in &module.items {
            if let Item::Use(u) = item {
                for (leaf, path) in use_leaves(&u.tree, Vec::new()) {
                    if leaf == name {
                        return self.resolve_path(m, &path, depth + 1);
                    }
                }
            }
        }
        None
    }

    /// What a path written in module `m` means.
    fn resolve_path(&self, m: usize, path: &[String], depth: usize) -> Option<Target> {
        let (first, rest) = path.split_first()?;
        let mut at = match first.as_str() {
            "crate" => Target::Module(0),
            "self" => Target::Module(m),
            "super" => Target::Module(self.modules[m].parent?),
            name if rest.is_empty() => return self.resolve_name(m, name, depth),
            name => self.resolve_name(m, name, depth)?,
        };
        for (i, seg) in rest.iter().enumerate() {
            let Target::Module(cur) = at else {
                return None;
            };
            at = match seg.as_str() {
                "super" => Target::Module(self.modules[cur].parent?),
                "self" if i + 1 == rest.len() => Target::Module(cur),
                seg => self.resolve_name(cur, seg, depth + 1)?,
            };
        }
        Some(at)
    }

    /// The names module `m` exports (`pub` items, `pub mod`, `pub use`), with their cfg.
    fn exports(&self, m: usize) -> Vec<(String, Target, Option<String>)> {
        let mut out = Vec::new();
        for item in &self.modules[m].items {
            let cfg = cfg_of(attrs_of(item)).ok().flatten();
            match item {
                Item::Use(u) if matches!(u.vis, Visibility::Public(_)) => {
                    for (leaf, path) in use_leaves(&u.tree, Vec::new()) {
                        let target = self.resolve_path(m, &path, 0).unwrap_or_else(|| {
                            panic!("cannot resolve pub use {}", path.join("::"))
                        });
                        out.push((leaf, target, cfg.clone()));
                    }
                }
                Item::Mod(md) if matches!(md.vis, Visibility::Public(_)) => {
                    let child = self.modules[m].children[&md.ident.to_string()];
                    out.push((md.ident.to_string(), Target::Module(child), cfg));
                }
                item if is_pub(item) => {
                    if let Some(name) = ident_of(item) {
                        out.push((name.clone(), Target::Item(m, name), cfg));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn item(&self, m: usize, name: &str) -> Option<&Item> {
        self.modules[m]
            .items
            .iter()
            .find(|i| !matches!(i, Item::Use(_)) && ident_of(i).as_deref() == Some(name))
    }

    /// Every impl block of the crate, by the item it is for.
    fn impls(&self) -> HashMap<Target, Vec<&syn::ItemImpl>> {
        let mut out: HashMap<Target, Vec<&syn::ItemImpl>> = HashMap::new();
        for (m, module) in self.modules.iter().enumerate() {
            for item in &module.items {
                let Item::Impl(imp) = item else { continue };
                let syn::Type::Path(tp) = &*imp.self_ty else {
                    continue;
                };
                let path: Vec<String> = tp
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                if let Some(target) = self.resolve_path(m, &path, 0) {
                    out.entry(target).or_default().push(imp);
                }
            }
        }
        out
    }
}

fn attrs_of(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn ident_of(item: &Item) -> Option<String> {
    let ident = match item {
        Item::Const(i) => &i.ident,
        Item::Enum(i) => &i.ident,
        Item::Fn(i) => &i.sig.ident,
        Item::Mod(i) => &i.ident,
        Item::Static(i) => &i.ident,
        Item::Struct(i) => &i.ident,
        Item::Trait(i) => &i.ident,
        Item::Type(i) => &i.ident,
        Item::Union(i) => &i.ident,
        Item::Macro(i) => i.ident.as_ref()?,
        _ => return None,
    };
    Some(ident.to_string())
}

fn is_pub(item: &Item) -> bool {
    let vis = match item {
        Item::Const(i) => &i.vis,
        Item::Enum(i) => &i.vis,
        Item::Fn(i) => &i.vis,
        Item::Static(i) => &i.vis,
        Item::Struct(i) => &i.vis,
        Item::Trait(i) => &i.vis,
        Item::Type(i) => &i.vis,
        Item::Union(i) => &i.vis,
        _ => return false,
    };
    matches!(vis, Visibility::Public(_))
}

/// The names a use tree brings in, each with the path it names.
fn use_leaves(tree: &UseTree, prefix: Vec<String>) -> Vec<(String, Vec<String>)> {
    let with = |seg: String| {
        let mut p = prefix.clone();
        p.push(seg);
        p
    };
    match tree {
        UseTree::Path(p) => use_leaves(&p.tree, with(p.ident.to_string())),
        UseTree::Name(n) if n.ident == "self" => {
            vec![(prefix.last().cloned().unwrap_or_default(), prefix.clone())]
        }
        UseTree::Name(n) => vec![(n.ident.to_string(), with(n.ident.to_string()))],
        UseTree::Rename(r) => vec![(r.rename.to_string(), with(r.ident.to_string()))],
        UseTree::Group(g) => g
            .items
            .iter()
            .flat_map(|t| use_leaves(t, prefix.clone()))
            .collect(),
        UseTree::Glob(_) => panic!("a glob import ({}::*): list its names", prefix.join("::")),
    }
}

/// Tokens as one line of Rust, spaced as rustfmt would in a signature.
fn tidy(tokens: TokenStream) -> String {
    let mut out = String::new();
    write_tokens(tokens, &mut out);
    out.trim().trim_end_matches(',').to_string()
}

fn write_tokens(tokens: TokenStream, out: &mut String) {
    let mut op = String::new();
    let word_end = |out: &str| {
        out.chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ')' || c == ']')
    };
    for tt in tokens {
        if let TokenTree::Punct(p) = &tt {
            op.push(p.as_char());
            if p.spacing() == Spacing::Joint && p.as_char() != '\'' {
                continue;
            }
            match op.as_str() {
                "," | ";" => out.push_str(&format!("{op} ")),
                ":" => out.push_str(": "),
                "->" | "=" | "+" | "=>" => {
                    let t = out.trim_end().len();
                    out.truncate(t);
                    out.push_str(&format!(" {op} "));
                }
                "&" | "&&" | "*" if word_end(out) => out.push_str(&format!(" {op}")),
                _ => out.push_str(&op),
            }
            op.clear();
            continue;
        }
        op.clear();
        match tt {
            TokenTree::Group(g) => {
                // After a lifetime (`&'a [u8]`), a bracket or parenthesis is a new type.
                let after_lifetime = out
                    .rsplit(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .is_some_and(|w| !w.is_empty() && out[..out.len() - w.len()].ends_with('\''));
                if after_lifetime && g.delimiter() != Delimiter::None {
                    out.push(' ');
                }
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::Brace => (" { ", " }"),
                    Delimiter::None => ("", ""),
                };
                out.push_str(open);
                write_tokens(g.stream(), out);
                let t = out.trim_end().trim_end_matches(',').len();
                out.truncate(t);
                out.push_str(close);
            }
            other => {
                let keyword = matches!(&other, TokenTree::Ident(i) if i == "where");
                if word_end(out) || (keyword && !out.ends_with(' ')) {
                    out.push(' ');
                }
                out.push_str(&other.to_string());
            }
        }
    }
}

/// Marks for an item's cfg and `#[doc(hidden)]`.
fn marks(cfg: &Option<String>, hidden: bool) -> String {
    let mut m = String::new();
    if let Some(c) = cfg {
        m.push_str(&format!(" [cfg({c})]"));
    }
    if hidden {
        m.push_str(" [hidden]");
    }
    m
}

/// A function's signature with `path` in place of its name.
fn fn_line(sig: &syn::Signature, path: &str) -> String {
    let mut sig = sig.clone();
    sig.ident = syn::Ident::new("NAME", sig.ident.span());
    tidy(sig.to_token_stream()).replacen("fn NAME", &format!("fn {path}"), 1)
}

struct Lister<'a> {
    krate: &'a Crate,
    impls: HashMap<Target, Vec<&'a syn::ItemImpl>>,
    lines: BTreeSet<String>,
    seen: BTreeSet<(String, usize)>,
}

impl Lister<'_> {
    fn module(&mut self, m: usize, path: &str) {
        if !self.seen.insert((path.to_string(), m)) {
            return;
        }
        for (name, target, cfg) in self.krate.exports(m) {
            let path = format!("{path}::{name}");
            match target {
                Target::Module(child) => {
                    let cfg = cfg.or_else(|| self.krate.modules[child].cfg.clone());
                    self.lines
                        .insert(format!("mod {path}{}", marks(&cfg, false)));
                    self.module(child, &path);
                }
                Target::Item(def, item) => self.item(def, &item, &path, cfg),
            }
        }
    }

    fn item(&mut self, m: usize, name: &str, path: &str, cfg: Option<String>) {
        let Some(item) = self.krate.item(m, name) else {
            panic!("{path}: no item {name}");
        };
        let cfg = cfg
            .or_else(|| cfg_of(attrs_of(item)).ok().flatten())
            .or_else(|| self.krate.modules[m].cfg.clone());
        let mk = marks(&cfg, hidden(attrs_of(item)));
        let generics = |g: &syn::Generics| tidy(g.to_token_stream());
        let line = match item {
            Item::Struct(s) => {
                for f in s
                    .fields
                    .iter()
                    .filter(|f| matches!(f.vis, Visibility::Public(_)))
                {
                    let field = f.ident.as_ref().map_or(String::new(), |i| format!("::{i}"));
                    let ty = tidy(f.ty.to_token_stream());
                    self.lines.insert(format!("field {path}{field}: {ty}{mk}"));
                }
                format!("struct {path}{}{mk}", generics(&s.generics))
            }
            Item::Enum(e) => {
                for v in &e.variants {
                    let types = |f: &syn::Field| {
                        let ty = tidy(f.ty.to_token_stream());
                        match &f.ident {
                            Some(name) => format!("{name}: {ty}"),
                            None => ty,
                        }
                    };
                    let list = v.fields.iter().map(types).collect::<Vec<_>>().join(", ");
                    let fields = match &v.fields {
                        Fields::Unit => String::new(),
                        Fields::Named(_) => format!(" {{ {list} }}"),
                        Fields::Unnamed(_) => format!("({list})"),
                    };
                    self.lines
                        .insert(format!("variant {path}::{}{fields}{mk}", v.ident));
                }
                format!("enum {path}{}{mk}", generics(&e.generics))
            }
            Item::Trait(t) => {
                for ti in &t.items {
                    let l = match ti {
                        TraitItem::Fn(f) => fn_line(&f.sig, &format!("{path}::{}", f.sig.ident)),
                        TraitItem::Type(ty) => format!("type {path}::{}", ty.ident),
                        TraitItem::Const(c) => format!(
                            "const {path}::{}: {}",
                            c.ident,
                            tidy(c.ty.to_token_stream())
                        ),
                        _ => continue,
                    };
                    let h = match ti {
                        TraitItem::Fn(f) => hidden(&f.attrs),
                        _ => false,
                    };
                    self.lines.insert(format!("{l}{}", marks(&cfg, h)));
                }
                format!("trait {path}{}{mk}", generics(&t.generics))
            }
            Item::Fn(f) => format!("{}{mk}", fn_line(&f.sig, path)),
            Item::Type(t) => format!(
                "type {path}{} = {}{mk}",
                generics(&t.generics),
                tidy(t.ty.to_token_stream())
            ),
            Item::Const(c) => format!("const {path}: {}{mk}", tidy(c.ty.to_token_stream())),
            Item::Static(s) => format!("static {path}: {}{mk}", tidy(s.ty.to_token_stream())),
            other => format!("item {path} {}{mk}", tidy(other.to_token_stream())),
        };
        self.lines.insert(line);
        for a in attrs_of(item)
            .iter()
            .filter(|a| a.path().is_ident("derive"))
        {
            if let Ok(list) = a.meta.require_list() {
                self.lines
                    .insert(format!("derive {path}: {}{mk}", tidy(list.tokens.clone())));
            }
        }
        let target = Target::Item(m, name.to_string());
        for imp in self.impls.get(&target).cloned().unwrap_or_default() {
            let Ok(impl_cfg) = cfg_of(&imp.attrs) else {
                continue;
            };
            let cfg = impl_cfg.or_else(|| cfg.clone());
            match &imp.trait_ {
                Some((neg, tr, _)) => {
                    let neg = if neg.is_some() { "!" } else { "" };
                    self.lines.insert(format!(
                        "impl {neg}{} for {path}{}",
                        tidy(tr.to_token_stream()),
                        marks(&cfg, false)
                    ));
                }
                None => {
                    for ii in &imp.items {
                        let l = match ii {
                            ImplItem::Fn(f) if matches!(f.vis, Visibility::Public(_)) => {
                                let h = hidden(&f.attrs);
                                let fc = cfg_of(&f.attrs).ok().flatten().or_else(|| cfg.clone());
                                let line = fn_line(&f.sig, &format!("{path}::{}", f.sig.ident));
                                format!("{line}{}", marks(&fc, h))
                            }
                            ImplItem::Const(c) if matches!(c.vis, Visibility::Public(_)) => {
                                format!(
                                    "const {path}::{}: {}{}",
                                    c.ident,
                                    tidy(c.ty.to_token_stream()),
                                    marks(&cfg, false)
                                )
                            }
                            _ => continue,
                        };
                        self.lines.insert(l);
                    }
                }
            }
        }
    }
}

fn listed() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let krate = Crate::load(&root.join("src"));
    let mut lister = Lister {
        krate: &krate,
        impls: krate.impls(),
        lines: BTreeSet::new(),
        seen: BTreeSet::new(),
    };
    lister.module(0, "statelog");
    lister.lines.into_iter().collect()
}

#[test]
fn the_public_api_matches_its_list() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let now = listed();
    let file = root.join(LIST);
    let text = format!("{}\n", now.join("\n"));
    if std::env::var_os("UPDATE_PUBLIC_API").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &text).unwrap();
        return;
    }
    let before = std::fs::read_to_string(&file).unwrap_or_default();
    let was: BTreeSet<&str> = before.lines().collect();
    let is: BTreeSet<&str> = now.iter().map(String::as_str).collect();
    let added: Vec<&&str> = is.difference(&was).collect();
    let removed: Vec<&&str> = was.difference(&is).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "the public API changed; review, then run `UPDATE_PUBLIC_API=1 cargo test --test \
         public_api` to update {LIST}\nadded:\n{}\nremoved:\n{}",
        added
            .iter()
            .map(|l| format!("+ {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        removed
            .iter()
            .map(|l| format!("- {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

/// The lister sees what it must: a few items known to be public, at their public paths, and
/// nothing private.
#[test]
fn the_list_holds_public_items_at_their_public_paths() {
    let now = listed();
    let has = |prefix: &str| now.iter().any(|l| l.starts_with(prefix));
    assert!(has("struct statelog::Store"));
    assert!(has("fn statelog::Store::write<R>("));
    assert!(has("fn statelog::Store::transact<R, E: From<Error>>("));
    assert!(has("fn statelog::Readable::get<K, V, Q>("));
    assert!(has(
        "variant statelog::Error::RowNotFound { table: String, key: String }"
    ));
    assert!(has("impl Readable for statelog::Snapshot"));
    assert!(has("mod statelog::epoch"));
    assert!(has("struct statelog::epoch::EpochLog"));
    assert!(has(
        "struct statelog::backend::SimBackend [cfg(feature = \"internals\")]"
    ));
    assert!(has("fn statelog::tools::verify_dir("));
    // Private: a crate-internal helper, a module's internals, test code.
    assert!(!now.iter().any(|l| l.contains("row_not_found")));
    assert!(!now.iter().any(|l| l.contains("statelog::store::")));
    assert!(!now.iter().any(|l| l.contains("Rows")));
}
