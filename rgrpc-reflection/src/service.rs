//! The `ServerReflectionInfo` handlers, v1 and v1alpha, over one [`Index`] of the
//! registered services' descriptors.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use prost::Message;
use rgrpc_runtime::{Code, RecvStream, RegisteredServices, SendStream, ServerContext, Status};

use crate::index::Index;
use crate::v1::server_reflection_request::MessageRequest;
use crate::v1::server_reflection_response::MessageResponse;
use crate::v1::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};
use crate::{v1, v1alpha};

/// The index and the number of services it was built from: services are only ever
/// added, so a count that differs means a rebuild.
type Cache = Mutex<Option<(usize, Arc<Index>)>>;

/// The reflection service, for both versions; [`crate::register`] registers it. Cheap
/// to clone.
#[derive(Clone, Debug)]
pub struct ReflectionService {
    services: RegisteredServices,
    cache: Arc<Cache>,
}

impl ReflectionService {
    /// A reflection service over `services` (from `Server::registered_services`).
    pub fn new(services: RegisteredServices) -> ReflectionService {
        ReflectionService {
            services,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// The index of the services registered now, and their names, sorted.
    fn index(&self) -> (Arc<Index>, Vec<&'static str>) {
        let descs = self.services.descs();
        let mut names: Vec<&'static str> = descs.iter().map(|d| d.service_name).collect();
        names.sort_unstable();
        // Nothing panics while the lock is held, so a poisoned cache is whole.
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((count, index)) = cache.as_ref() {
            if *count == descs.len() {
                return (index.clone(), names);
            }
        }
        let index = Arc::new(Index::new(descs.iter().flat_map(|d| d.files)));
        *cache = Some((descs.len(), index.clone()));
        (index, names)
    }

    /// The answer to one request; `sent` holds the files already sent on this stream
    /// (bounded by the number of files in the index).
    fn answer(
        &self,
        request: ServerReflectionRequest,
        sent: &mut HashSet<String>,
    ) -> Result<ServerReflectionResponse, Status> {
        let (index, names) = self.index();
        let not_found = |what: String| {
            MessageResponse::ErrorResponse(ErrorResponse {
                error_code: Code::NotFound as i32,
                error_message: what,
            })
        };
        let files = |name: &str, sent: &mut HashSet<String>| {
            MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                file_descriptor_proto: index
                    .file_with_imports(name, sent)
                    .into_iter()
                    .map(|encoded| encoded.to_vec())
                    .collect(),
            })
        };
        let response = match &request.message_request {
            None => {
                return Err(Status::invalid_argument(
                    "invalid MessageRequest: none of its fields is set",
                ));
            }
            Some(MessageRequest::FileByFilename(name)) if index.has_file(name) => files(name, sent),
            Some(MessageRequest::FileByFilename(name)) => not_found(format!("unknown file {name}")),
            Some(MessageRequest::FileContainingSymbol(symbol)) => {
                match index.file_containing_symbol(symbol) {
                    Some(file) => files(file, sent),
                    None => not_found(format!("unknown symbol {symbol}")),
                }
            }
            Some(MessageRequest::FileContainingExtension(ext)) => {
                match index.file_containing_extension(&ext.containing_type, ext.extension_number) {
                    Some(file) => files(file, sent),
                    None => not_found(format!(
                        "unknown extension {} of {}",
                        ext.extension_number, ext.containing_type
                    )),
                }
            }
            Some(MessageRequest::AllExtensionNumbersOfType(name)) => {
                match index.extension_numbers(name) {
                    Some(numbers) => {
                        MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                            base_type_name: name.strip_prefix('.').unwrap_or(name).to_owned(),
                            extension_number: numbers,
                        })
                    }
                    None => not_found(format!("unknown type {name}")),
                }
            }
            Some(MessageRequest::ListServices(_)) => {
                MessageResponse::ListServicesResponse(ListServiceResponse {
                    service: names
                        .into_iter()
                        .map(|name| ServiceResponse {
                            name: name.to_owned(),
                        })
                        .collect(),
                })
            }
        };
        Ok(ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(response),
        })
    }
}

impl v1::ServerReflectionServer for ReflectionService {
    async fn server_reflection_info(
        &self,
        _ctx: &ServerContext,
        mut requests: RecvStream<ServerReflectionRequest>,
        mut responses: SendStream<ServerReflectionResponse>,
    ) -> Result<(), Status> {
        let mut sent = HashSet::new();
        while let Some(request) = requests.message().await? {
            responses.send(&self.answer(request, &mut sent)?).await?;
        }
        Ok(())
    }
}

impl v1alpha::ServerReflectionServer for ReflectionService {
    async fn server_reflection_info(
        &self,
        _ctx: &ServerContext,
        mut requests: RecvStream<v1alpha::ServerReflectionRequest>,
        mut responses: SendStream<v1alpha::ServerReflectionResponse>,
    ) -> Result<(), Status> {
        let mut sent = HashSet::new();
        while let Some(request) = requests.message().await? {
            // v1alpha and v1 are the same messages under another package: same
            // field numbers and types, so one re-encodes as the other.
            let response = self.answer(convert(&request)?, &mut sent)?;
            responses.send(&convert(&response)?).await?;
        }
        Ok(())
    }
}

fn convert<A: Message, B: Message + Default>(message: &A) -> Result<B, Status> {
    B::decode(message.encode_to_vec().as_slice())
        .map_err(|e| Status::internal(format!("v1alpha and v1 reflection differ: {e}")))
}
